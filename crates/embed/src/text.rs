//! Tokenization for the text encoders: the model's own `tokenizer.json` run by
//! the `tokenizers` crate, with truncation at the model's limit and padding of
//! a batch to its longest member done here (the file's own padding and
//! truncation settings are for other uses and are switched off).

use tokenizers::{Encoding, Tokenizer, TruncationParams};

use pgrec_base::error::{Error, ErrorKind, Result};

#[derive(Clone)]
pub struct TextTokenizer {
    /// Truncates to `max_tokens`, special tokens included: what the model sees.
    model_view: Tokenizer,
    /// No truncation: for counting.
    full: Tokenizer,
    pub max_tokens: usize,
}

/// A batch of encoded texts padded to one length, row-major.
pub struct Batch {
    pub len: usize,
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
}

impl TextTokenizer {
    pub fn new(bytes: &[u8], max_tokens: usize) -> Result<TextTokenizer> {
        let mut full = Tokenizer::from_bytes(bytes).map_err(|e| {
            Error::new(ErrorKind::InvalidBinaryRepresentation, format!("tokenizer.json cannot be read: {e}"))
        })?;
        full.with_padding(None);
        full.with_truncation(None)
            .map_err(|e| Error::new(ErrorKind::InvalidParameterValue, format!("tokenizer.json: {e}")))?;
        let mut model_view = full.clone();
        model_view
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| Error::new(ErrorKind::InvalidParameterValue, format!("tokenizer.json: {e}")))?;
        Ok(TextTokenizer { model_view, full, max_tokens })
    }

    /// Bytes of a text the model can possibly use: `max_tokens` tokens never
    /// span more in text that is not mostly whitespace. Only this much is
    /// tokenized, so a 100 MB text costs no more than a page.
    pub fn max_text_bytes(&self) -> usize {
        self.max_tokens.max(1) * TEXT_BYTES_PER_TOKEN
    }

    /// What the model sees for each text, and whether it was cut short.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<(Encoding, bool)>> {
        let limit = self.max_text_bytes();
        let heads: Vec<(&str, bool)> = texts.iter().map(|t| head(t, limit)).collect();
        let encs = self
            .model_view
            .encode_batch(heads.iter().map(|h| h.0).collect::<Vec<_>>(), true)
            .map_err(|e| Error::new(ErrorKind::InvalidParameterValue, format!("could not tokenize the input: {e}")))?;
        Ok(encs
            .into_iter()
            .zip(heads)
            .map(|(e, (_, cut_text))| {
                let cut = cut_text || !e.get_overflowing().is_empty();
                (e, cut)
            })
            .collect())
    }

    /// The tokens the model sees, special tokens included.
    pub fn tokens(&self, text: &str) -> Result<Vec<String>> {
        Ok(self.encode(&[text])?.remove(0).0.get_tokens().to_vec())
    }

    /// Tokens in the whole text, special tokens included, before truncation.
    /// A long text is counted in pieces cut at whitespace (where every
    /// supported pre-tokenizer splits anyway), so memory stays bounded;
    /// `between` runs before each piece and may stop the count.
    pub fn count(&self, text: &str, between: &mut dyn FnMut() -> Result<()>) -> Result<usize> {
        let err = |e: tokenizers::Error| {
            Error::new(ErrorKind::InvalidParameterValue, format!("could not tokenize the input: {e}"))
        };
        if text.len() <= COUNT_PIECE_BYTES {
            return self.full.encode(text, true).map(|e| e.len()).map_err(err);
        }
        let specials = self.full.encode("", true).map_err(err)?.len();
        let mut total = specials;
        let mut rest = text;
        while !rest.is_empty() {
            between()?;
            let (piece, _) = head(rest, COUNT_PIECE_BYTES);
            // Back to the last whitespace, unless the piece has none.
            let cut = match piece.len() < rest.len() {
                true => piece.rfind(char::is_whitespace).filter(|&w| w > 0).unwrap_or(piece.len()),
                false => piece.len(),
            };
            let (piece, tail) = rest.split_at(cut);
            total += self.full.encode(piece, false).map_err(err)?.len();
            rest = tail;
        }
        Ok(total)
    }

    /// Token id of `token`, if the vocabulary has it.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.full.token_to_id(token)
    }
}

/// See [`TextTokenizer::max_text_bytes`]: 64 bytes a token is over ten times
/// English prose's average.
const TEXT_BYTES_PER_TOKEN: usize = 64;

/// Piece size of a long text's token count.
const COUNT_PIECE_BYTES: usize = 64 * 1024;

/// The first `max` bytes of `text` (back to a character boundary), and
/// whether that is not all of it.
fn head(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// Padded tokens per forward pass. Larger passes make larger matrix
/// multiplies, but every element-wise step then walks tensors that no longer
/// fit in cache: all-MiniLM-L6-v2 on 2 cores embeds 146-token texts at 42-48
/// per second three at a time (this limit), and at 40 with all 32 in one
/// pass; 32 short titles (~10 tokens) still go through together.
pub const BATCH_TOKENS: usize = 512;

/// Vectors for `texts` from `forward`, which runs the model on up to `batch`
/// encoded texts at a time and at most `tokens` padded tokens (one text at
/// least). Texts are sorted by length first, so a batch pads little; results
/// come back in input order, with the truncated inputs.
pub fn embed_in_batches(
    tok: &TextTokenizer,
    texts: &[&str],
    batch: usize,
    tokens: usize,
    forward: impl Fn(&[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>>,
) -> Result<super::Embedded> {
    let encs = tok.encode(texts)?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(encs[k].0.len()));
    let mut vectors = vec![Vec::new(); texts.len()];
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let longest = encs[order[start]].0.len().max(1);
        let n = (tokens / longest).clamp(1, batch.max(1)).min(order.len() - start);
        chunks.push(&order[start..start + n]);
        start += n;
    }
    for chunk in chunks {
        let b: Vec<&Encoding> = chunk.iter().map(|&k| &encs[k].0).collect();
        let out = forward(&b).map_err(|e| super::candle_err("the model", e))?;
        for (&k, v) in chunk.iter().zip(out) {
            vectors[k] = v;
        }
    }
    let truncated = encs.iter().enumerate().filter(|(_, e)| e.1).map(|(k, _)| k).collect();
    Ok(super::Embedded { vectors, truncated })
}

/// Pads `encs` (ids and attention masks) to the longest, with `pad` ids.
pub fn pad(encs: &[&Encoding], pad: u32) -> Batch {
    let len = encs.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![pad; encs.len() * len];
    let mut mask = vec![0u32; encs.len() * len];
    for (r, e) in encs.iter().enumerate() {
        ids[r * len..r * len + e.len()].copy_from_slice(e.get_ids());
        mask[r * len..r * len + e.len()].copy_from_slice(e.get_attention_mask());
    }
    Batch { len, ids, mask }
}
