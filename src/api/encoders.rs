//! SQL functions of the encoders: `load_encoder`, `drop_encoder`,
//! `embed_text` (one text or an array), `tokenize` and `token_count`. Models
//! run on worker threads (`pgrec.threads`, pure `embed` code); this thread only
//! reads the registry, reports truncation and converts the vectors.

use pgrx::prelude::*;

use super::{defaulted, required, workers};
use crate::catalog::encoders;
use crate::embed::Encoder;
use crate::error::{Error, ErrorKind, Result};
use crate::guc;
use crate::sqlstate::OrRaise;
use crate::types::datum::{Embedding, EmbeddingArray};

/// An array of `n` vectors of `dims` floats must fit in one Postgres value
/// (1 GB): refused before any is computed.
fn check_result_size(n: usize, dims: usize) -> Result<()> {
    const MAX_BYTES: usize = 1 << 30;
    if n.saturating_mul(dims.saturating_mul(4) + 8) <= MAX_BYTES {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::ProgramLimitExceeded,
        format!("{n} embeddings of {dims} dimensions exceed the 1 GB limit of one array"),
    )
    .with_hint("embed fewer inputs per call, e.g. in batches of 10000 rows"))
}

/// Most texts per forward-pass group between two checks for Ctrl-C and
/// statement_timeout.
const TEXTS_PER_CHECK: usize = 64;

/// Most tokens per group, as [`token_bound`] counts them: 4,096 is 16 texts at
/// MiniLM's 256-token limit, 1.5 s on two idle cores in the dev build the tests
/// use (less in a release build). Groups of 64 such texts let a cancel wait
/// 6 s, and over 10 s on a busy machine.
const TOKENS_PER_CHECK: usize = 4096;

/// A text's tokens, bounded from above without tokenizing it: at least one byte
/// per token after the two special ones, never more than the model keeps.
fn token_bound(text: &str, max_tokens: usize) -> usize {
    text.len().saturating_add(2).min(max_tokens.max(1))
}

/// `order` cut into groups of at most [`TEXTS_PER_CHECK`] texts and, past the
/// first text of a group, at most [`TOKENS_PER_CHECK`] tokens.
fn groups<'a>(order: &'a [usize], texts: &[&str], max_tokens: usize) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0usize);
    for (at, &k) in order.iter().enumerate() {
        let t = token_bound(texts[k], max_tokens);
        if at > start && (at - start == TEXTS_PER_CHECK || tokens + t > TOKENS_PER_CHECK) {
            out.push(&order[start..at]);
            (start, tokens) = (at, 0);
        }
        tokens += t;
    }
    if start < order.len() {
        out.push(&order[start..]);
    }
    out
}

/// Embeds `texts` on the worker threads, a group at a time (longest first,
/// so each group pads little), checking for interrupts between groups; a
/// NOTICE names each input that was cut to the model's token limit.
fn embed(encoder: &Encoder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    check_result_size(texts.len(), encoder.dims())?;
    let pool = workers()?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(texts[k].len()));
    let mut vectors = vec![Vec::new(); texts.len()];
    let mut truncated = Vec::new();
    for group in groups(&order, texts, encoder.tokenizer().max_tokens) {
        pgrx::check_for_interrupts!();
        let batch: Vec<&str> = group.iter().map(|&k| texts[k]).collect();
        let out = pool.install(|| encoder.embed_texts(&batch))?;
        truncated.extend(out.truncated.iter().map(|&j| group[j]));
        for (&k, v) in group.iter().zip(out.vectors) {
            vectors[k] = v;
        }
    }
    truncated.sort_unstable();
    let limit = encoder.tokenizer().max_tokens;
    for &k in &truncated {
        let what = if texts.len() == 1 { "the input".to_string() } else { format!("input {}", k + 1) };
        pgrx::notice!("{what} was truncated to the model's limit of {limit} tokens");
    }
    Ok(vectors)
}

#[pg_extern(sql = false)]
fn load_encoder(
    name: Option<&str>,
    path: Option<&str>,
    store_in_database: Option<bool>,
) -> TableIterator<
    'static,
    (name!(name, String), name!(architecture, String), name!(dims, i32), name!(max_tokens, i32), name!(stored, bool)),
> {
    let r = (|| {
        let name = required(name, "name")?;
        let path = required(path, "path")?;
        encoders::register(name, path, defaulted(store_in_database, "store_in_database")?)
    })()
    .or_raise();
    TableIterator::once((r.name, r.architecture, r.dims, r.max_tokens, r.stored))
}

#[pg_extern(sql = false)]
fn drop_encoder(name: &str) -> bool {
    encoders::drop_encoder(name).or_raise();
    true
}

#[pg_extern(sql = false)]
fn embed_text(encoder: &str, input: &str) -> Embedding {
    let v = (|| {
        let enc = encoders::load(encoder)?;
        Ok::<_, Error>(embed(&enc, &[input])?.remove(0))
    })()
    .or_raise();
    Embedding::from_slice(&v)
}

/// The batch form: one forward pass per 32 texts (sorted by length, so little
/// padding), NULL elements give NULL.
#[pg_extern(sql = false)]
fn embed_texts(encoder: &str, inputs: Array<'_, &str>) -> EmbeddingArray {
    let texts: Vec<Option<&str>> = inputs.iter().collect();
    let present: Vec<&str> = texts.iter().flatten().copied().collect();
    let vectors = (|| {
        let enc = encoders::load(encoder)?;
        if present.is_empty() {
            return Ok(Vec::new());
        }
        embed(&enc, &present)
    })()
    .or_raise();
    let mut it = vectors.into_iter();
    EmbeddingArray(texts.iter().map(|t| t.and_then(|_| it.next()).map(|v| Embedding::from_slice(&v))).collect())
}

#[pg_extern(sql = false)]
fn tokenize(encoder: &str, input: &str) -> Vec<String> {
    (|| encoders::load(encoder)?.tokenizer().tokens(input))().or_raise()
}

#[pg_extern(sql = false)]
fn token_count(encoder: &str, input: &str) -> i32 {
    let n = (|| {
        encoders::load(encoder)?.tokenizer().count(input, &mut || {
            pgrx::check_for_interrupts!();
            Ok(())
        })
    })()
    .or_raise();
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn images(encoder: &str, images: &[&[u8]]) -> Result<Vec<Vec<f32>>> {
    let enc = encoders::load(encoder)?;
    let clip = enc.clip(encoder)?;
    check_result_size(images.len(), enc.dims())?;
    let max = guc::max_image_pixels();
    let pool = workers()?;
    let mut out = Vec::with_capacity(images.len());
    // Interrupts are checked between groups, as for texts.
    for group in images.chunks(16) {
        pgrx::check_for_interrupts!();
        out.extend(pool.install(|| clip.embed_images(group, max))?);
    }
    Ok(out)
}

#[pg_extern(sql = false)]
fn embed_image(encoder: &str, image: &[u8]) -> Embedding {
    let v = images(encoder, &[image]).or_raise().remove(0);
    Embedding::from_slice(&v)
}

/// The batch form: NULL elements give NULL.
#[pg_extern(sql = false)]
fn embed_images(encoder: &str, inputs: Array<'_, &[u8]>) -> EmbeddingArray {
    let all: Vec<Option<&[u8]>> = inputs.iter().collect();
    let present: Vec<&[u8]> = all.iter().flatten().copied().collect();
    let vectors = if present.is_empty() {
        encoders::load(encoder).and_then(|e| e.clip(encoder).map(|_| ())).or_raise();
        Vec::new()
    } else {
        images(encoder, &present).or_raise()
    };
    let mut it = vectors.into_iter();
    EmbeddingArray(all.iter().map(|t| t.and_then(|_| it.next()).map(|v| Embedding::from_slice(&v))).collect())
}

/// CLIP's zero-shot classifier: each label put into `template`, embedded, and
/// compared with the image; probabilities by softmax, best first.
#[pg_extern(sql = false)]
fn zero_shot_classify(
    encoder: &str,
    image: &[u8],
    labels: Array<'_, &str>,
    template: &str,
) -> TableIterator<'static, (name!(label, String), name!(probability, f32))> {
    let rows = (|| {
        let labels: Vec<&str> = labels
            .iter()
            .enumerate()
            .map(|(k, l)| {
                l.ok_or_else(|| {
                    Error::new(
                        ErrorKind::NullValueNotAllowed,
                        format!("labels must not contain nulls (element {} is null)", k + 1),
                    )
                })
            })
            .collect::<Result<_>>()?;
        if labels.is_empty() {
            return Err(Error::new(ErrorKind::InvalidParameterValue, "labels must not be empty")
                .with_hint("pass the candidate labels, e.g. ARRAY['cat', 'dog']"));
        }
        if !template.contains("{}") {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!("template \"{template}\" has no {{}} for the label"),
            )
            .with_hint("write the template with {} where the label goes, e.g. 'a photo of a {}'"));
        }
        let enc = encoders::load(encoder)?;
        let clip = enc.clip(encoder)?;
        let prompts: Vec<String> = labels.iter().map(|l| template.replace("{}", l)).collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let max = guc::max_image_pixels();
        let (img, texts) = workers()?.install(|| {
            Ok::<_, Error>((clip.embed_images(&[image], max)?.remove(0), clip.embed_texts(&refs)?.vectors))
        })?;
        let probs = clip.zero_shot(&img, &texts);
        let mut rows: Vec<(String, f32)> = labels.iter().map(|l| l.to_string()).zip(probs).collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(rows)
    })()
    .or_raise();
    TableIterator::new(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(texts: &[&str], max_tokens: usize) -> Vec<usize> {
        let order: Vec<usize> = (0..texts.len()).collect();
        groups(&order, texts, max_tokens).iter().map(|g| g.len()).collect()
    }

    #[test]
    fn groups_are_bounded_by_tokens_and_by_texts() {
        let long = "word ".repeat(300);
        // At MiniLM's 256-token limit, 16 texts fill a group.
        assert_eq!(sizes(&vec![long.as_str(); 40], 256), vec![16, 16, 8]);
        // Short texts (21 bytes: 23 tokens at most): the count bound.
        assert_eq!(sizes(&vec!["a short product title"; 130], 256), vec![64, 64, 2]);
        // A text alone above the budget still forms a group of its own.
        let huge = "word ".repeat(1000);
        assert_eq!(sizes(&[huge.as_str(), "x"], 100_000), vec![1, 1]);
        assert!(sizes(&[], 256).is_empty());
        // Every index exactly once, in order.
        let texts = vec![long.as_str(); 33];
        let order: Vec<usize> = (0..33).rev().collect();
        let flat: Vec<usize> = groups(&order, &texts, 256).concat();
        assert_eq!(flat, order);
    }
}
