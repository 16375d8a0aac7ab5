//! Training parameters, read from the `params jsonb` of `train()`: every key is
//! optional; unknown keys, keys of other algorithms and out-of-range values are
//! errors that name the key. Each algorithm declares its keys once (a [`Param`]
//! table beside its typed params, whose `Default` is the defaults); the split
//! and seed keys every algorithm takes are the [`Protocol`]'s. The same tables
//! render the README's params tables (a test keeps them equal).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::{Algorithm, AnyParams};
use pgrec_base::error::{Error, ErrorKind, Result};

/// What values a key accepts.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// An integer between `min` and `max`; `note` says what an end means.
    Int {
        min: i64,
        max: i64,
        note: &'static str,
    },
    /// A finite number ≥ 0.
    NonNegative,
    /// A number > 0 and at most `max`.
    Positive {
        max: f64,
    },
    /// A number ≥ 0 and < 1; `note` says what 0 means.
    Fraction {
        note: &'static str,
    },
    /// Any finite number.
    Finite,
    Bool,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A list of 1 to `max_len` integers between `min` and `max`.
    Sizes {
        max_len: usize,
        min: i64,
        max: i64,
    },
    /// A model name.
    Name,
}

/// One key an algorithm takes.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub key: &'static str,
    pub rule: Rule,
    pub meaning: &'static str,
}

/// Shared rules, so a key means the same range everywhere.
pub const FACTORS: Rule = Rule::Int { min: 1, max: 1024, note: "" };
pub const ITERATIONS: Rule = Rule::Int { min: 1, max: 10_000, note: "" };
pub const LEARNING_RATE: Rule = Rule::Positive { max: 10.0 };
pub const BATCH: Rule = Rule::Int { min: 1, max: 1 << 20, note: "" };

fn invalid(key: &str, value: impl std::fmt::Display, rule: &str) -> Error {
    Error::new(ErrorKind::InvalidParameterValue, format!("invalid value {value} for param \"{key}\": {rule}"))
}

fn wrong_type(key: &str, value: &Value, expected: &str) -> Error {
    Error::new(
        ErrorKind::InvalidParameterValue,
        format!("invalid params: invalid type for param \"{key}\": {value}, expected {expected}"),
    )
}

fn with_note(rule: String, note: &str) -> String {
    if note.is_empty() { rule } else { format!("{rule} ({note})") }
}

/// "a", "a and b", "a, b and c" (or another conjunction).
pub fn listed(names: &[&str], conjunction: &str) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

impl Rule {
    /// Checks one key's JSON value against the rule.
    fn check(self, key: &str, v: &Value) -> Result<()> {
        let number = || v.as_f64().ok_or_else(|| wrong_type(key, v, "a number"));
        match self {
            Rule::Int { min, max, note } => {
                let n = v.as_i64().ok_or_else(|| wrong_type(key, v, "an integer"))?;
                if !(min..=max).contains(&n) {
                    return Err(invalid(key, n, &with_note(format!("must be between {min} and {max}"), note)));
                }
            }
            Rule::NonNegative => {
                let x = number()?;
                if !(x.is_finite() && x >= 0.0) {
                    return Err(invalid(key, x, "must be a finite number ≥ 0"));
                }
            }
            Rule::Positive { max } => {
                let x = number()?;
                if !(x.is_finite() && x > 0.0 && x <= max) {
                    return Err(invalid(key, x, &format!("must be > 0 and at most {max}")));
                }
            }
            Rule::Fraction { note } => {
                let x = number()?;
                if !(0.0..1.0).contains(&x) {
                    return Err(invalid(key, x, &with_note("must be ≥ 0 and < 1".into(), note)));
                }
            }
            Rule::Finite => {
                let x = number()?;
                if !x.is_finite() {
                    return Err(invalid(key, x, "must be a finite number"));
                }
            }
            Rule::Bool => {
                v.as_bool().ok_or_else(|| wrong_type(key, v, "true or false"))?;
            }
            Rule::Choice(choices) => {
                let s = v.as_str().ok_or_else(|| wrong_type(key, v, "a string"))?;
                if !choices.contains(&s) {
                    return Err(invalid(key, format!("\"{s}\""), &format!("must be {}", listed(choices, "or"))));
                }
            }
            Rule::Sizes { max_len, min, max } => {
                let list = v.as_array().ok_or_else(|| wrong_type(key, v, "a list of integers"))?;
                let sizes: Vec<i64> = list
                    .iter()
                    .map(|d| d.as_i64().ok_or_else(|| wrong_type(key, v, "a list of integers")))
                    .collect::<Result<_>>()?;
                if sizes.is_empty() || sizes.len() > max_len || sizes.iter().any(|d| !(min..=max).contains(d)) {
                    let shown = sizes.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
                    return Err(invalid(
                        key,
                        format!("[{shown}]"),
                        &format!("must be 1 to {max_len} sizes, each between {min} and {max}"),
                    ));
                }
            }
            Rule::Name => {
                v.as_str().ok_or_else(|| wrong_type(key, v, "a model name"))?;
            }
        }
        Ok(())
    }

    /// The accepted values as the README's tables show them.
    fn values(self) -> String {
        match self {
            Rule::Int { min: i64::MIN, max: i64::MAX, .. } => "any integer".into(),
            Rule::Int { min, max, .. } => format!("{min}–{max}"),
            Rule::NonNegative => "≥ 0".into(),
            Rule::Positive { max } => format!("> 0, ≤ {max}"),
            Rule::Fraction { .. } => "≥ 0, < 1".into(),
            Rule::Finite => "any number".into(),
            Rule::Bool => "`true`, `false`".into(),
            Rule::Choice(c) => c.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
            Rule::Sizes { max_len, min, max } => format!("1 to {max_len} sizes, each {min}–{max}"),
            Rule::Name => "a model's name".into(),
        }
    }
}

/// The keys of the training protocol, which every algorithm takes: how the
/// held-out part is split off, and the seed of everything random.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Protocol {
    pub test_fraction: f64,
    pub cold_items: f64,
    /// Any integer; its bits seed the generators.
    pub seed: i64,
}

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol { test_fraction: 0.2, cold_items: 0.0, seed: 42 }
    }
}

impl Protocol {
    pub const PARAMS: &'static [Param] = &[
        Param {
            key: "test_fraction",
            rule: Rule::Fraction { note: "0 disables the held-out split" },
            meaning: "share of each user's rows held out for the metrics (0: none)",
        },
        Param {
            key: "cold_items",
            rule: Rule::Fraction { note: "0: no cold-start evaluation" },
            meaning: "share of the items held out entirely, for `cold_` metrics (below)",
        },
        Param {
            key: "seed",
            rule: Rule::Int { min: i64::MIN, max: i64::MAX, note: "" },
            meaning: "the split and every random draw of training",
        },
    ];

    pub fn seed(&self) -> u64 {
        self.seed as u64
    }
}

/// Parsed params: the protocol's and the algorithm's own, typed.
pub struct Params {
    pub algorithm: Algorithm,
    pub protocol: Protocol,
    own: Box<dyn AnyParams>,
}

impl Clone for Params {
    fn clone(&self) -> Params {
        Params { algorithm: self.algorithm, protocol: self.protocol.clone(), own: self.own.clone_box() }
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("algorithm", &self.algorithm)
            .field("protocol", &self.protocol)
            .field("own", &self.own)
            .finish()
    }
}

impl Params {
    /// Every default of `algorithm`.
    pub fn defaults(algorithm: Algorithm) -> Params {
        Params { algorithm, protocol: Protocol::default(), own: algorithm.defaults() }
    }

    /// Params from typed parts (tests, benchmarks).
    pub fn from_parts<P: AnyParams>(algorithm: Algorithm, protocol: Protocol, own: P) -> Params {
        Params { algorithm, protocol, own: Box::new(own) }
    }

    /// The algorithm's own params, if they are a `P`.
    pub fn get<P: 'static>(&self) -> Option<&P> {
        self.own.as_any().downcast_ref::<P>()
    }

    pub fn algorithm_params(&self) -> &dyn AnyParams {
        self.own.as_ref()
    }

    /// The protocol's and the algorithm's params, defaults included, as one
    /// JSON object.
    pub fn to_json(&self) -> Value {
        let mut all = serde_json::to_value(&self.protocol).unwrap_or_default();
        if let (Value::Object(a), Value::Object(b)) = (&mut all, self.own.to_json()) {
            a.extend(b);
        }
        all
    }

    /// The keys `algorithm` takes: its own, then the protocol's.
    fn keys(algorithm: Algorithm) -> impl Iterator<Item = &'static Param> {
        algorithm.params().iter().chain(Protocol::PARAMS)
    }

    fn hint(algorithm: Algorithm) -> String {
        let keys: Vec<&str> = Params::keys(algorithm).map(|p| p.key).collect();
        format!("params of {} is a JSON object with the keys {}, each optional", algorithm.name(), keys.join(", "))
    }

    /// Parses `json` (a JSON object) over `algorithm`'s defaults. A null value
    /// is the default.
    pub fn parse(algorithm: Algorithm, json: &str) -> Result<Params> {
        let bad =
            |message: String| Error::new(ErrorKind::InvalidParameterValue, message).with_hint(Params::hint(algorithm));
        let value: Value = serde_json::from_str(json).map_err(|e| bad(format!("invalid params: {e}")))?;
        let Value::Object(object) = value else {
            return Err(bad(format!("invalid params: expected a JSON object, got {value}")));
        };
        let (mut protocol, mut own) = (serde_json::Map::new(), serde_json::Map::new());
        for (key, v) in object {
            if v.is_null() {
                continue;
            }
            if let Some(p) = Protocol::PARAMS.iter().find(|p| p.key == key) {
                p.rule.check(&key, &v)?;
                protocol.insert(key, v);
            } else if let Some(p) = algorithm.params().iter().find(|p| p.key == key) {
                p.rule.check(&key, &v)?;
                own.insert(key, v);
            } else {
                let takers = Algorithm::names_where(|a| a.params().iter().any(|p| p.key == key));
                if !takers.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidParameterValue,
                        format!("param \"{key}\" applies to {takers} only, not {}", algorithm.name()),
                    ));
                }
                let expected: Vec<String> = Params::keys(algorithm).map(|p| format!("`{}`", p.key)).collect();
                return Err(bad(format!(
                    "invalid params: unknown field `{key}`, expected one of {}",
                    expected.join(", ")
                )));
            }
        }
        let protocol: Protocol =
            serde_json::from_value(Value::Object(protocol)).map_err(|e| bad(format!("invalid params: {e}")))?;
        let own = algorithm.typed(Value::Object(own))?;
        Ok(Params { algorithm, protocol, own })
    }
}

/// `algorithm`'s params (or the protocol's, for None) as the README's table.
pub fn markdown_table(algorithm: Option<Algorithm>) -> String {
    let (params, defaults) = match algorithm {
        Some(a) => (a.params(), a.defaults().to_json()),
        None => (Protocol::PARAMS, serde_json::to_value(Protocol::default()).unwrap_or_default()),
    };
    let mut out = String::from("| key | default | values | meaning |\n|---|---|---|---|\n");
    for p in params {
        let default = match defaults.get(p.key) {
            None | Some(Value::Null) => "—".to_string(),
            Some(Value::String(s)) => format!("`{s}`"),
            Some(Value::Array(a)) => {
                format!("[{}]", a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
            }
            // f32 params widened to JSON's f64 show as the f32 they are.
            Some(Value::Number(x)) if x.is_f64() => (x.as_f64().unwrap_or_default() as f32).to_string(),
            Some(v) => v.to_string(),
        };
        out.push_str(&format!("| `{}` | {default} | {} | {} |\n", p.key, p.rule.values(), p.meaning));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpr::BprParams;
    use crate::kgat::KgatParams;
    use crate::kgat::propagate::Aggregator;
    use crate::vbpr::VbprParams;

    fn algorithm(name: &str) -> Algorithm {
        Algorithm::parse(name).unwrap()
    }

    #[test]
    fn defaults_and_overrides() {
        let als = algorithm("als");
        let p = Params::parse(als, "{}").unwrap();
        assert_eq!(p.to_json(), Params::defaults(als).to_json());
        let p = Params::parse(
            algorithm("bpr"),
            r#"{"factors": 8, "iterations": 3, "test_fraction": 0, "negatives": null}"#,
        )
        .unwrap();
        let b = p.get::<BprParams>().unwrap();
        assert_eq!((b.factors, b.iterations, b.negatives, p.protocol.test_fraction), (8, 3, None, 0.0));
        assert_eq!(Params::parse(als, r#"{"seed": -1}"#).unwrap().protocol.seed(), u64::MAX);
    }

    #[test]
    fn bad_params_are_named() {
        let msg = |j: &str| Params::parse(algorithm("als"), j).unwrap_err().message;
        assert_eq!(msg(r#"{"factors": 0}"#), "invalid value 0 for param \"factors\": must be between 1 and 1024");
        assert_eq!(msg(r#"{"factors": -1}"#), "invalid value -1 for param \"factors\": must be between 1 and 1024");
        assert_eq!(
            msg(r#"{"regularization": -1}"#),
            "invalid value -1 for param \"regularization\": must be a finite number ≥ 0"
        );
        assert_eq!(
            msg(r#"{"factor": 8}"#),
            "invalid params: unknown field `factor`, expected one of `factors`, `iterations`, `regularization`, `alpha`, `cg_steps`, `test_fraction`, `cold_items`, `seed`"
        );
        assert_eq!(
            Params::parse(algorithm("als"), r#"{"factor": 8}"#).unwrap_err().hint.as_deref(),
            Some(
                "params of als is a JSON object with the keys factors, iterations, regularization, alpha, cg_steps, test_fraction, cold_items, seed, each optional"
            )
        );
        assert_eq!(
            msg(r#"{"factors": "many"}"#),
            "invalid params: invalid type for param \"factors\": \"many\", expected an integer"
        );
        assert_eq!(msg("[1]"), "invalid params: expected a JSON object, got [1]");
        assert!(msg("{").starts_with("invalid params: EOF"), "{}", msg("{"));
        assert_eq!(msg(r#"{"layers": [8]}"#), "param \"layers\" applies to lightgcn and kgat only, not als");
        assert_eq!(
            msg(r#"{"batch_size": 8}"#),
            "param \"batch_size\" applies to lightgcn, kgat and vbpr only, not als"
        );
        assert_eq!(msg(r#"{"cold_boost": 1}"#), "param \"cold_boost\" applies to vbpr only, not als");
        assert_eq!(msg(r#"{"item_bias": true}"#), "param \"item_bias\" applies to kgat only, not als");
        assert_eq!(msg(r#"{"layer_init": 0.1}"#), "param \"layer_init\" applies to kgat only, not als");
        assert_eq!(
            msg(r#"{"cold_items": 1}"#),
            "invalid value 1 for param \"cold_items\": must be ≥ 0 and < 1 (0: no cold-start evaluation)"
        );
        assert_eq!(
            msg(r#"{"test_fraction": 1.5}"#),
            "invalid value 1.5 for param \"test_fraction\": must be ≥ 0 and < 1 (0 disables the held-out split)"
        );
        let kgat = algorithm("kgat");
        let k = Params::parse(kgat, r#"{"item_bias": true, "layer_init": 0.5}"#).unwrap();
        let k = k.get::<KgatParams>().unwrap();
        assert_eq!((k.item_bias, k.layer_init), (Some(true), Some(0.5)));
        let vbpr = algorithm("vbpr");
        let v = Params::parse(vbpr, r#"{"content_factors": 8, "cold_boost": -0.5, "batch_size": 32}"#).unwrap();
        let v = v.get::<VbprParams>().unwrap();
        assert_eq!((v.factors, v.content_factors, v.cold_boost, v.batch), (32, 8, -0.5, 32));
        let d = Params::defaults(vbpr);
        let d = d.get::<VbprParams>().unwrap();
        assert_eq!((d.content_factors, d.regularization, d.content_regularization), (8, 0.02, 0.02));
        let kmsg = |j: &str| Params::parse(kgat, j).unwrap_err().message;
        assert_eq!(
            kmsg(r#"{"layers": [64, 0]}"#),
            "invalid value [64, 0] for param \"layers\": must be 1 to 8 sizes, each between 1 and 1024"
        );
        assert_eq!(
            kmsg(r#"{"aggregator": "max"}"#),
            "invalid value \"max\" for param \"aggregator\": must be bi, gcn or graphsage"
        );
        assert_eq!(kmsg(r#"{"dropout": 1}"#), "invalid value 1 for param \"dropout\": must be ≥ 0 and < 1");
        assert_eq!(
            kmsg(r#"{"layer_init": 0}"#),
            "invalid value 0 for param \"layer_init\": must be > 0 and at most 10"
        );
        assert_eq!(
            kmsg(r#"{"batch_size": 0}"#),
            "invalid value 0 for param \"batch_size\": must be between 1 and 1048576"
        );
        assert_eq!(
            kmsg(r#"{"patience": -1}"#),
            "invalid value -1 for param \"patience\": must be between 0 and 10000 (0: no early stopping)"
        );
        let p = Params::parse(kgat, r#"{"layers": [16, 8], "aggregator": "gcn", "factors": 16}"#).unwrap();
        let k = p.get::<KgatParams>().unwrap();
        assert_eq!(
            (k.embedding, k.layers.clone(), k.aggregator, k.learning_rate),
            (16, vec![16, 8], Aggregator::Gcn, 1e-4)
        );
        assert_eq!(
            Params::parse(algorithm("popular"), r#"{"factors": 8}"#).unwrap_err().message,
            "param \"factors\" applies to als, bpr, mf, lightgcn, kgat and vbpr only, not popular"
        );
    }

    /// The README's params tables are these tables: a change to a key, its
    /// default, its rule or its meaning shows there. Set PGREC_BLESS_README=1
    /// to write them into README.md.
    #[test]
    fn readme_params_tables_are_the_registry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let Ok(readme) = std::fs::read_to_string(path) else {
            panic!("{path} is missing");
        };
        let mut tables: Vec<(String, String)> = Algorithm::all()
            .filter(|a| !a.params().is_empty())
            .map(|a| (a.name().to_string(), markdown_table(Some(a))))
            .collect();
        tables.push(("protocol".into(), markdown_table(None)));
        let mut out = String::new();
        let mut lines = readme.lines().peekable();
        let mut missing: Vec<String> = tables.iter().map(|t| t.0.clone()).collect();
        while let Some(line) = lines.next() {
            out.push_str(line);
            out.push('\n');
            let Some(name) = line.trim().strip_prefix("<!-- params: ").and_then(|s| s.strip_suffix(" -->")) else {
                continue;
            };
            let Some((_, table)) = tables.iter().find(|t| t.0 == name) else {
                panic!("README names params of \"{name}\", which the registry lacks");
            };
            missing.retain(|m| m != name);
            let indent: String = line.chars().take_while(|c| *c == ' ').collect();
            while lines.peek().is_some_and(|l| l.trim_start().starts_with('|')) {
                lines.next();
            }
            for t in table.lines() {
                out.push_str(&format!("{indent}{t}\n"));
            }
        }
        assert!(missing.is_empty(), "README has no `<!-- params: NAME -->` table for {missing:?}");
        if std::env::var_os("PGREC_BLESS_README").is_some() {
            std::fs::write(path, &out).unwrap();
        } else {
            assert!(
                out == readme,
                "README.md's params tables differ from the registry: run PGREC_BLESS_README=1 cargo test -p pgrec-recsys readme_params"
            );
        }
    }
}
