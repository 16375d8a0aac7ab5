//! Hyperparameter search for `tune()`: the search space (a JSON object whose
//! keys are the algorithm's params, each a list of values or a numeric
//! range), the trial configurations drawn from it, and the trials themselves,
//! each trained on the training part of the protocol's split and scored on a
//! validation part split off that training part by the same rule (a random
//! share of each user's rows, or each user's latest rows when the data has
//! timestamps), so the held-out test part is never seen while choosing.
//!
//! Strategy: the full grid when every key is a list and the grid has at most
//! `trials` points (each point once); otherwise `trials` random draws (lists
//! uniformly, ranges uniformly or log-uniformly), repeats redrawn.

use std::time::Instant;

use serde_json::{Map, Value};

use super::fit::{Side, fit_with};
use super::metrics::Metrics;
use super::params::{Protocol, Rule};
use super::progress::Progress;
use super::split;
use super::{Algorithm, Dataset, Params};
use pgrec_base::error::{Error, ErrorKind, Result};
use pgrec_base::rng::Rng;

/// Most trials one call may ask for.
pub const MAX_TRIALS: usize = 1000;
/// Most values one key's list may hold.
const MAX_VALUES: usize = 100;

fn bad(message: String) -> Error {
    Error::new(ErrorKind::InvalidParameterValue, message)
}

#[derive(Clone, Debug, PartialEq)]
enum Domain {
    Values(Vec<Value>),
    Range { min: f64, max: f64, log: bool, integer: bool },
}

/// A parsed search space.
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    dims: Vec<(String, Domain)>,
}

/// How the configurations were chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Grid,
    Random,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Grid => "grid",
            Strategy::Random => "random",
        }
    }
}

const SEARCH_HINT: &str = r#"search is a JSON object of the algorithm's params, each a list of values or a range: {"factors": [32, 64, 128], "regularization": {"min": 0.001, "max": 1, "log": true}}"#;

impl Search {
    /// Parses `json` for `algorithm`: every key one of its own params (the
    /// protocol's are fixed for all trials: set them in params), each a
    /// non-empty list or, for a numeric param, {"min", "max"[, "log"]}.
    pub fn parse(algorithm: Algorithm, json: &Value) -> Result<Search> {
        let Value::Object(object) = json else {
            return Err(bad(format!("search must be a JSON object, not {json}")).with_hint(SEARCH_HINT));
        };
        if object.is_empty() {
            return Err(bad("search names no params".into()).with_hint(SEARCH_HINT));
        }
        let mut dims = Vec::with_capacity(object.len());
        for (key, v) in object {
            if Protocol::PARAMS.iter().any(|p| p.key == key) {
                return Err(bad(format!("param \"{key}\" is the protocol's and is the same for every trial"))
                    .with_hint(format!("set \"{key}\" in params instead of search")));
            }
            let Some(param) = algorithm.params().iter().find(|p| p.key == key) else {
                // The params parser says which algorithms take it, or lists
                // this one's keys.
                let probe = Value::Object(Map::from_iter([(key.clone(), v.clone())]));
                Params::parse(algorithm, &probe.to_string())?;
                return Err(bad(format!("param \"{key}\" cannot be searched")));
            };
            if matches!(param.rule, Rule::Name) {
                return Err(bad(format!("param \"{key}\" names a model and cannot be searched"))
                    .with_hint(format!("set \"{key}\" in params")));
            }
            let domain = match v {
                Value::Array(values) => {
                    if values.is_empty() || values.len() > MAX_VALUES {
                        return Err(bad(format!(
                            "search for \"{key}\" lists {} values; list 1 to {MAX_VALUES}",
                            values.len()
                        )));
                    }
                    Domain::Values(values.clone())
                }
                Value::Object(range) => range_of(key, param.rule, range)?,
                other => {
                    return Err(bad(format!("search for \"{key}\" must be a list of values or a range, not {other}"))
                        .with_hint(SEARCH_HINT));
                }
            };
            dims.push((key.clone(), domain));
        }
        Ok(Search { dims })
    }

    /// Points of the full grid, or None when a key is a range.
    fn grid_size(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, (_, d)| match d {
            Domain::Values(v) => n.checked_mul(v.len()),
            Domain::Range { .. } => None,
        })
    }

    /// The trial configurations over `base` (the params every trial shares)
    /// and the strategy that chose them. Random draws that repeat an earlier
    /// configuration are drawn again, so fewer than `trials` come back only
    /// when the space has fewer points.
    pub fn configs(&self, base: &Map<String, Value>, trials: usize, seed: u64) -> (Vec<Map<String, Value>>, Strategy) {
        let with = |point: Vec<(String, Value)>| {
            let mut c = base.clone();
            c.extend(point);
            c
        };
        if let Some(n) = self.grid_size().filter(|&n| n <= trials) {
            let configs = (0..n)
                .map(|mut k| {
                    with(
                        self.dims
                            .iter()
                            .rev()
                            .map(|(key, d)| match d {
                                Domain::Values(v) => {
                                    let value = v[k % v.len()].clone();
                                    k /= v.len();
                                    (key.clone(), value)
                                }
                                // No grid has a range (`grid_size`).
                                Domain::Range { .. } => (key.clone(), Value::Null),
                            })
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect(),
                    )
                })
                .collect();
            return (configs, Strategy::Grid);
        }
        let mut rng = Rng::new(seed ^ 0x7E57);
        let mut configs: Vec<Map<String, Value>> = Vec::with_capacity(trials);
        let mut attempts = 0;
        while configs.len() < trials && attempts < 50 * trials {
            attempts += 1;
            let c = with(self.dims.iter().map(|(key, d)| (key.clone(), draw(d, &mut rng))).collect());
            if !configs.contains(&c) {
                configs.push(c);
            }
        }
        (configs, Strategy::Random)
    }
}

fn range_of(key: &str, rule: Rule, range: &Map<String, Value>) -> Result<Domain> {
    let integer = match rule {
        Rule::Int { .. } => true,
        Rule::NonNegative | Rule::Positive { .. } | Rule::Fraction { .. } | Rule::Finite => false,
        _ => return Err(bad(format!("param \"{key}\" is not a number: search it with a list of values"))),
    };
    for k in range.keys() {
        if !["min", "max", "log"].contains(&k.as_str()) {
            return Err(bad(format!("the range of \"{key}\" has an unknown key \"{k}\"")).with_hint(SEARCH_HINT));
        }
    }
    let bound =
        |k: &str| {
            range.get(k).and_then(Value::as_f64).filter(|x| x.is_finite()).ok_or_else(|| {
                bad(format!("the range of \"{key}\" needs a finite number \"{k}\"")).with_hint(SEARCH_HINT)
            })
        };
    let (min, max) = (bound("min")?, bound("max")?);
    let log = match range.get("log") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(bad(format!("\"log\" in the range of \"{key}\" must be true or false, not {other}")));
        }
    };
    if min > max {
        return Err(bad(format!("the range of \"{key}\" has min {min} above max {max}")));
    }
    if log && min <= 0.0 {
        return Err(bad(format!("a log range of \"{key}\" needs min > 0, not {min}")));
    }
    Ok(Domain::Range { min, max, log, integer })
}

fn draw(d: &Domain, rng: &mut Rng) -> Value {
    match d {
        Domain::Values(v) => v[rng.below(v.len() as u64) as usize].clone(),
        &Domain::Range { min, max, log, integer } => {
            let u = rng.uniform();
            let x = if log { (min.ln() + u * (max.ln() - min.ln())).exp() } else { min + u * (max - min) };
            if integer {
                Value::from(x.round().clamp(min.ceil(), max.floor()) as i64)
            } else {
                // Six significant digits: configurations people can read back.
                let x: f64 = format!("{x:.6e}").parse().unwrap_or(x);
                serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
            }
        }
    }
}

/// One trial: its params (the object given to `train`), its validation
/// metrics or the error that stopped it, and its seconds.
#[derive(Clone, Debug)]
pub struct Trial {
    pub params: Map<String, Value>,
    pub metrics: Option<Metrics>,
    pub error: Option<String>,
    pub seconds: f64,
}

/// What a caller hears between trials.
pub enum Event<'a> {
    /// Inside trial `trial` (1-based): a training's progress.
    Progress(usize, &'a Progress),
    /// Trial `trial` finished.
    Done(usize, &'a Trial),
}

/// Runs every configuration on the training part of `p`'s split of `ds`
/// (the same id spaces, so `side` still applies), each scored on a
/// validation part split from it by the same protocol. A trial whose
/// training diverged is kept with its error; any other error stops the
/// search. Returns the trials and the index of the best by the
/// algorithm's key metric (None if none finished).
pub fn run(
    ds: &Dataset,
    configs: &[Params],
    json: &[Map<String, Value>],
    side: &Side<'_>,
    threads: usize,
    on_event: &mut dyn FnMut(Event<'_>) -> Result<()>,
) -> Result<(Vec<Trial>, Option<usize>)> {
    let Some(first) = configs.first() else {
        return Ok((Vec::new(), None));
    };
    let protocol = &first.protocol;
    let cs = split::cold_split(ds, protocol.test_fraction, protocol.cold_items, protocol.seed());
    let train = ds.keep_rows(&cs.warm.train);
    let (key, lower_better) = first.algorithm.key_metric();
    let mut trials = Vec::with_capacity(configs.len());
    let mut best: Option<(usize, f64)> = None;
    for (k, (p, params)) in configs.iter().zip(json).enumerate() {
        let started = Instant::now();
        let result = fit_with(&train, p, side, threads, &mut |pr| on_event(Event::Progress(k + 1, pr)))
            .and_then(|t| t.model.check_finite().map(|()| t));
        let trial = match result {
            Ok(t) => Trial {
                params: params.clone(),
                metrics: Some(t.metrics),
                error: None,
                seconds: started.elapsed().as_secs_f64(),
            },
            Err(e) if e.kind == ErrorKind::NumericValueOutOfRange => Trial {
                params: params.clone(),
                metrics: None,
                error: Some(e.message),
                seconds: started.elapsed().as_secs_f64(),
            },
            Err(e) => return Err(e),
        };
        if let Some(v) = trial.metrics.as_ref().and_then(|m| m.get(key)).copied().filter(|v| v.is_finite()) {
            let better = best.is_none_or(|(_, b)| if lower_better { v < b } else { v > b });
            if better {
                best = Some((k, v));
            }
        }
        on_event(Event::Done(k + 1, &trial))?;
        trials.push(trial);
    }
    Ok((trials, best.map(|b| b.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(algorithm: &str, json: &str) -> Result<Search> {
        Search::parse(Algorithm::parse(algorithm).unwrap(), &serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_small_grid_is_walked_once_and_a_range_is_drawn() {
        let s = search("als", r#"{"factors": [8, 16], "alpha": [1, 10, 40]}"#).unwrap();
        let base = Map::from_iter([("iterations".to_string(), Value::from(3))]);
        let (c, how) = s.configs(&base, 10, 1);
        assert_eq!(how, Strategy::Grid);
        assert_eq!(c.len(), 6);
        let shown: Vec<String> = c.iter().map(|m| Value::Object(m.clone()).to_string()).collect();
        assert_eq!(shown[0], r#"{"alpha":1,"factors":8,"iterations":3}"#);
        assert_eq!(shown[5], r#"{"alpha":40,"factors":16,"iterations":3}"#);
        let mut sorted = shown.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 6, "{shown:?}");
        // Fewer trials than grid points: random draws, without repeats.
        let (c, how) = s.configs(&base, 4, 1);
        assert_eq!((how, c.len()), (Strategy::Random, 4));
        let s = search(
            "als",
            r#"{"regularization": {"min": 0.001, "max": 10, "log": true}, "factors": {"min": 4, "max": 9}}"#,
        )
        .unwrap();
        let (c, how) = s.configs(&Map::new(), 50, 7);
        assert_eq!((how, c.len()), (Strategy::Random, 50));
        let regs: Vec<f64> = c.iter().map(|m| m["regularization"].as_f64().unwrap()).collect();
        assert!(regs.iter().all(|&r| (0.001..=10.0).contains(&r)));
        // Log-uniform: about a quarter in each decade.
        assert!(regs.iter().filter(|&&r| r < 0.01).count() >= 5, "{regs:?}");
        assert!(c.iter().all(|m| (4..=9).contains(&m["factors"].as_i64().unwrap())));
        // Same seed, same draws.
        assert_eq!(s.configs(&Map::new(), 50, 7).0, c);
    }

    #[test]
    fn bad_search_spaces_are_named() {
        let msg = |a: &str, j: &str| search(a, j).err().unwrap().message;
        assert_eq!(msg("als", "[1]"), "search must be a JSON object, not [1]");
        assert_eq!(msg("als", "{}"), "search names no params");
        assert_eq!(
            msg("als", r#"{"test_fraction": [0.1]}"#),
            "param \"test_fraction\" is the protocol's and is the same for every trial"
        );
        assert_eq!(msg("als", r#"{"layers": [1]}"#), "param \"layers\" applies to lightgcn and kgat only, not als");
        assert!(msg("als", r#"{"factorz": [1]}"#).starts_with("invalid params: unknown field `factorz`"));
        assert_eq!(msg("als", r#"{"factors": []}"#), "search for \"factors\" lists 0 values; list 1 to 100");
        assert_eq!(
            msg("als", r#"{"factors": 8}"#),
            "search for \"factors\" must be a list of values or a range, not 8"
        );
        assert_eq!(
            msg("als", r#"{"factors": {"min": 9, "max": 4}}"#),
            "the range of \"factors\" has min 9 above max 4"
        );
        assert_eq!(msg("als", r#"{"factors": {"min": 4}}"#), "the range of \"factors\" needs a finite number \"max\"");
        assert_eq!(
            msg("als", r#"{"factors": {"min": 4, "max": 8, "step": 2}}"#),
            "the range of \"factors\" has an unknown key \"step\""
        );
        assert_eq!(
            msg("als", r#"{"alpha": {"min": 0, "max": 8, "log": true}}"#),
            "a log range of \"alpha\" needs min > 0, not 0"
        );
        assert_eq!(
            msg("item_knn", r#"{"similarity": {"min": 0, "max": 1}}"#),
            "param \"similarity\" is not a number: search it with a list of values"
        );
    }

    #[test]
    fn trials_choose_on_validation_and_keep_diverged_ones() {
        let mut rows = Vec::new();
        let mut rng = Rng::new(3);
        for u in 0..200i64 {
            for _ in 0..20 {
                let item = (u % 5) * 20 + rng.below(20) as i64;
                rows.push(crate::Row { user: u, item, weight: 1.0, ts: None });
            }
        }
        let ds = Dataset::from_rows(&rows).unwrap();
        let als = Algorithm::parse("als").unwrap();
        let s = Search::parse(als, &serde_json::json!({"factors": [1, 8], "alpha": [1, 1e30]})).unwrap();
        let (maps, _) = s.configs(&Map::from_iter([("iterations".into(), Value::from(5))]), 10, 42);
        let configs: Vec<Params> =
            maps.iter().map(|m| als.parse_params(&Value::Object(m.clone()).to_string()).unwrap()).collect();
        let mut done = 0;
        let (trials, best) = run(&ds, &configs, &maps, &Side::default(), 2, &mut |e| {
            if let Event::Done(..) = e {
                done += 1;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!((trials.len(), done), (4, 4));
        let best = &trials[best.unwrap()];
        assert_eq!(best.params["factors"], 8, "{best:?}");
        // Validation users are training users of the outer split only: the
        // inner split holds out a fifth of the outer training rows.
        let m = best.metrics.as_ref().unwrap();
        assert!(m["recall@20"] > 0.2, "{m:?}");
        let diverged: Vec<&Trial> = trials.iter().filter(|t| t.error.is_some()).collect();
        assert_eq!(diverged.len(), 2, "{trials:?}");
        assert!(diverged.iter().all(|t| t.params["alpha"] == 1e30 && t.metrics.is_none()), "{diverged:?}");
    }
}
