//! The BERT encoder against sentence-transformers: the real all-MiniLM-L6-v2
//! (fetched by `scripts/test.sh` into `target/models`, found through
//! `PGREC_MINILM_DIR`) must reproduce the reference embeddings, tokens and
//! token counts in `tests/fixtures/minilm/reference.json` (made by
//! `scripts/fixtures/make-encoder-fixtures.sh`), and damaged folders must fail
//! with the right error.

use std::path::PathBuf;

use super::*;
use pgrec_base::error::ErrorKind;

fn minilm_dir() -> PathBuf {
    PathBuf::from(std::env::var("PGREC_MINILM_DIR").unwrap_or_else(|_| {
        panic!("PGREC_MINILM_DIR is not set: run ./scripts/test.sh, which fetches all-MiniLM-L6-v2 into target/models")
    }))
}

fn reference() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/minilm/reference.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    pgrec_base::kernels::dot(a, b) as f64
        / ((pgrec_base::kernels::norm_squared(a) as f64).sqrt() * (pgrec_base::kernels::norm_squared(b) as f64).sqrt())
}

#[test]
fn minilm_matches_sentence_transformers() {
    let files = ModelFiles::from_dir(&minilm_dir()).unwrap();
    let enc = Encoder::load(&files).unwrap();
    assert_eq!(enc.architecture(), Architecture::Bert);
    assert_eq!(enc.dims(), 384);
    let r = reference();
    assert_eq!(enc.tokenizer().max_tokens, r["max_seq_length"].as_u64().unwrap() as usize);
    let sentences: Vec<&str> = r["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let expected: Vec<Vec<f32>> = r["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    // All at once (padded batches) and one at a time must both agree.
    let batch = enc.embed_texts(&sentences).unwrap();
    let long = sentences.len() - 1;
    assert_eq!(batch.truncated, vec![long], "only the long sentence is cut");
    for (k, s) in sentences.iter().enumerate() {
        let single = enc.embed_texts(&[s]).unwrap().vectors.remove(0);
        for (how, v) in [("batch", &batch.vectors[k]), ("single", &single)] {
            let c = cosine(v, &expected[k]);
            assert!(c >= 0.9999, "{how} sentence {k} {s:?}: cosine {c}");
            let norm = pgrec_base::kernels::norm_squared(v).sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "normalised: {norm}");
        }
    }
    for (k, toks) in r["tokens"].as_array().unwrap().iter().enumerate() {
        let want: Vec<&str> = toks.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(enc.tokenizer().tokens(sentences[k]).unwrap(), want);
    }
    for (k, n) in r["token_counts"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            enc.tokenizer().count(sentences[k], &mut || Ok(())).unwrap(),
            n.as_u64().unwrap() as usize,
            "{:?}",
            sentences[k]
        );
    }
    assert_eq!(enc.tokenizer().tokens(sentences[long]).unwrap().len(), 256);
}

/// A temporary folder removed when dropped, so repeated test runs leave nothing in /tmp.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

/// A copy of the MiniLM folder in a fresh temporary folder, changed by `edit`.
fn damaged(tag: &str, edit: impl FnOnce(&std::path::Path)) -> Scratch {
    let dir = std::env::temp_dir().join(format!("pgrec-embed-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for f in files::FILES {
        let src = minilm_dir().join(f);
        if src.exists() {
            std::fs::copy(&src, dir.join(f)).unwrap();
        }
    }
    edit(&dir);
    Scratch(dir)
}

#[test]
fn bad_model_folders_fail_with_the_right_error() {
    let err = |dir: &std::path::Path| match ModelFiles::from_dir(dir).and_then(|f| Encoder::load(&f)) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    };
    let e = err(std::path::Path::new("/nonexistent/model"));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::UndefinedFile, "model folder \"/nonexistent/model\" does not exist")
    );

    let d = damaged("missing", |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    let e = err(&d);
    assert_eq!(e.kind, ErrorKind::UndefinedFile);
    assert!(e.message.ends_with("has no tokenizer.json"), "{}", e.message);

    let d = damaged("arch", |d| {
        std::fs::write(d.join("config.json"), r#"{"model_type": "gpt2", "vocab_size": 10}"#).unwrap()
    });
    let e = err(&d);
    assert_eq!(e.kind, ErrorKind::FeatureNotSupported);
    assert_eq!(e.message, "model_type \"gpt2\" in config.json is not a supported encoder architecture");

    let d = damaged("corrupt", |d| {
        let w = std::fs::read(d.join("model.safetensors")).unwrap();
        std::fs::write(d.join("model.safetensors"), &w[..w.len() / 3]).unwrap();
    });
    let e = err(&d);
    assert_eq!(e.kind, ErrorKind::InvalidBinaryRepresentation);
    assert!(e.message.starts_with("model.safetensors could not be used: "), "{}", e.message);

    let d = damaged("garbage", |d| std::fs::write(d.join("model.safetensors"), b"not a safetensors file").unwrap());
    assert_eq!(err(&d).kind, ErrorKind::InvalidBinaryRepresentation);

    let d = damaged("tokenizer", |d| std::fs::write(d.join("tokenizer.json"), b"{\"nope\": 1}").unwrap());
    let e = err(&d);
    assert_eq!(e.kind, ErrorKind::InvalidBinaryRepresentation);
    assert!(e.message.starts_with("tokenizer.json cannot be read"), "{}", e.message);

    let d = damaged("config", |d| std::fs::write(d.join("config.json"), b"{not json").unwrap());
    let e = err(&d);
    assert_eq!(e.kind, ErrorKind::InvalidParameterValue);
    assert!(e.message.starts_with("config.json is not valid"), "{}", e.message);

    // Sizes that would divide by zero or allocate without end: refused at load.
    for (key, value, message) in [
        ("num_attention_heads", 0, "config.json num_attention_heads is 0: must be between 1 and 1048576"),
        ("hidden_size", 100, "config.json hidden_size is 100: must be a multiple of num_attention_heads (12)"),
        ("num_hidden_layers", 100_000, "config.json num_hidden_layers is 100000: must be at most 256"),
    ] {
        let d = damaged(key, |d| {
            let mut c: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
            c[key] = value.into();
            std::fs::write(d.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        });
        let e = err(&d);
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidParameterValue, message));
    }
}

#[test]
fn long_texts_are_read_only_as_far_as_the_model_can_use() {
    let files = ModelFiles::from_dir(&minilm_dir()).unwrap();
    let enc = Encoder::load(&files).unwrap();
    let tok = enc.tokenizer();
    let sentence = "the quick brown fox jumps over the lazy dog. ";
    let long = sentence.repeat(20_000);
    // The model sees the same first tokens whether the text is cut or not.
    let short = sentence.repeat(100);
    let (a, b) = (tok.encode(&[&long]).unwrap().remove(0), tok.encode(&[&short]).unwrap().remove(0));
    assert_eq!(a.0.get_ids(), b.0.get_ids());
    assert!(a.1 && b.1);
    // Counting in pieces gives the count of the whole text, and stops when asked.
    let whole = tok.count(&sentence.repeat(1000), &mut || Ok(())).unwrap();
    assert_eq!(whole, 2 + 10 * 1000);
    let mut pieces = 0;
    assert_eq!(
        tok.count(&long, &mut || {
            pieces += 1;
            Ok(())
        })
        .unwrap(),
        2 + 10 * 20_000
    );
    assert_eq!(pieces, long.len().div_ceil(64 * 1024));
    let stop = tok.count(&long, &mut || Err(pgrec_base::error::Error::new(ErrorKind::DataException, "stop")));
    assert_eq!(stop.unwrap_err().message, "stop");
    // A multi-byte character at the cut is kept whole.
    let wide = "é".repeat(40_000);
    assert!(tok.encode(&[&wide]).unwrap()[0].1);
}

fn tiny_clip_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-clip")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A BMP header announcing `w` × `h` pixels, with no pixel data after it.
pub fn bmp_header(w: u32, h: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&(54 + w * h * 3).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    b
}

#[test]
fn tiny_clip_matches_transformers() {
    let files = ModelFiles::from_dir(&tiny_clip_dir()).unwrap();
    let enc = Encoder::load(&files).unwrap();
    assert_eq!(enc.architecture(), Architecture::Clip);
    assert_eq!(enc.dims(), 16);
    let clip = enc.clip("tiny").unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tiny_clip_dir().join("reference.json")).unwrap()).unwrap();
    assert!((clip.logit_scale - r["logit_scale"].as_f64().unwrap() as f32).abs() < 1e-4);
    let texts: Vec<&str> = r["texts"].as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
    let batch = enc.embed_texts(&texts).unwrap();
    assert_eq!(batch.truncated, vec![texts.len() - 1], "only the long text is cut");
    for (k, t) in r["texts"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<u32> = t["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let (e, _) = enc.tokenizer().encode(&[texts[k]]).unwrap().remove(0);
        assert_eq!(e.get_ids(), ids.as_slice(), "token ids of {:?}", texts[k]);
        let single = enc.embed_texts(&[texts[k]]).unwrap().vectors.remove(0);
        let want = floats(&t["embedding"]);
        for (how, v) in [("batch", &batch.vectors[k]), ("single", &single)] {
            let d = max_abs_diff(v, &want);
            assert!(d < 1e-4, "{how} text {k} {:?}: max difference {d}", texts[k]);
        }
    }
    let labels: Vec<String> = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| r["template"].as_str().unwrap().replace("{}", l.as_str().unwrap()))
        .collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let label_vecs = enc.embed_texts(&label_refs).unwrap().vectors;
    let imgs = r["images"].as_array().unwrap();
    let bytes: Vec<Vec<u8>> =
        imgs.iter().map(|i| std::fs::read(tiny_clip_dir().join(i["file"].as_str().unwrap())).unwrap()).collect();
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let all = clip.embed_images(&refs, 1 << 24).unwrap();
    for (k, i) in imgs.iter().enumerate() {
        let name = i["file"].as_str().unwrap();
        let want = floats(&i["embedding"]);
        let single = clip.embed_images(&[refs[k]], 1 << 24).unwrap().remove(0);
        assert!(max_abs_diff(&single, &all[k]) < 1e-6, "{name}: batch and single agree");
        let probs = clip.zero_shot(&all[k], &label_vecs);
        if i["exact"].as_bool().unwrap() {
            let d = max_abs_diff(&all[k], &want);
            assert!(d < 1e-4, "{name}: max difference {d}");
            let d = max_abs_diff(&probs, &floats(&i["probabilities"]));
            assert!(d < 1e-4, "{name}: probabilities differ by {d}");
        } else {
            // Lossy formats: decoders may round differently.
            let c = cosine(&all[k], &want);
            assert!(c > 0.99, "{name}: cosine {c}");
        }
    }
}

#[test]
fn bad_images_fail_with_the_right_error() {
    let enc = Encoder::load(&ModelFiles::from_dir(&tiny_clip_dir()).unwrap()).unwrap();
    let clip = enc.clip("tiny").unwrap();
    let err = |b: &[u8], max: u64| clip.embed_images(&[b], max).unwrap_err();
    let e = err(b"definitely not an image", 1 << 24);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::InvalidBinaryRepresentation, "the bytes are not an image in a supported format")
    );
    let png = std::fs::read(tiny_clip_dir().join("shapes.png")).unwrap();
    let e = err(&png[..png.len() / 2], 1 << 24);
    assert_eq!(e.kind, ErrorKind::InvalidBinaryRepresentation);
    assert!(e.message.starts_with("the image cannot be decoded"), "{}", e.message);
    // A 100-megapixel header is refused before any pixel is decoded.
    let e = err(&bmp_header(10_000, 10_000), 50_000_000);
    assert_eq!(e.kind, ErrorKind::ProgramLimitExceeded);
    assert_eq!(e.message, "image of 10000 x 10000 pixels exceeds pgrec.max_image_pixels (50000000)");
    // The limit is the setting, not a constant.
    let e = err(&png, 40 * 90 - 1);
    assert_eq!(e.message, "image of 40 x 90 pixels exceeds pgrec.max_image_pixels (3599)");
    assert!(clip.embed_images(&[&png], 40 * 90).is_ok());
    // A text encoder cannot embed images.
    let bert = Encoder::load(&ModelFiles::from_dir(&minilm_dir()).unwrap()).unwrap();
    let e = bert.clip("minilm").err().unwrap();
    assert_eq!(e.kind, ErrorKind::FeatureNotSupported);
    assert_eq!(e.message, "encoder \"minilm\" is a bert text encoder and cannot embed images");
}

/// pgrec's BERT forward pass must compute what candle-transformers'
/// `BertModel` computes, for each activation, with and without the `bert.`
/// weight prefix, on a padded batch whose attention groups split it.
#[test]
fn transformer_matches_candle_bert() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use candle_transformers::models::bert::{BertModel, Config};

    for (act, prefixed) in [("gelu", false), ("geluapproximate", true), ("relu", false)] {
        let config: Config = serde_json::from_value(serde_json::json!({
            "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 24, "hidden_act": act, "hidden_dropout_prob": 0.0,
            "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "pad_token_id": 0, "model_type": "bert"
        }))
        .unwrap();
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let vb = if prefixed { vb.pp("bert") } else { vb };
        let reference = BertModel::load(vb, &config).unwrap();
        // Random weights of the reference's size are drawn on first use; give
        // the biases and norms values too, so none of them is a no-op.
        for (k, v) in vars.data().lock().unwrap().iter() {
            if k.ends_with("bias") || k.ends_with("weight") && v.as_tensor().rank() == 1 {
                v.set(&v.as_tensor().randn_like(0.5, 0.3).unwrap()).unwrap();
            }
        }
        let ours =
            transformer::BertEncoder::load(VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu), &config).unwrap();

        // 40 sequences of 48 tokens, the second half padded after 20 (and
        // one after 1): every token's state must match; padded positions,
        // which pooling never reads, are free to differ.
        let (b, s) = (40usize, 48usize);
        let ids: Vec<u32> = (0..b * s).map(|i| (i * 7 % 49 + 1) as u32).collect();
        let keep = |i: usize| i / s < b / 2 || i % s < 20 && (i / s != b - 1 || i % s < 1);
        let mask: Vec<u32> = (0..b * s).map(|i| u32::from(keep(i))).collect();
        let ids = Tensor::from_vec(ids, (b, s), &Device::Cpu).unwrap();
        let mask_t = Tensor::from_vec(mask.clone(), (b, s), &Device::Cpu).unwrap();
        let want = reference.forward(&ids, &ids.zeros_like().unwrap(), Some(&mask_t)).unwrap();
        let got = ours.forward(&ids, &mask_t).unwrap();
        let (want, got) = (want.flatten_to(1).unwrap(), got.flatten_to(1).unwrap());
        let (want, got) = (want.to_vec2::<f32>().unwrap(), got.to_vec2::<f32>().unwrap());
        let mut diff = 0f32;
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            if mask[k] == 1 {
                diff = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(diff, f32::max);
            }
        }
        assert!(diff < 1e-4, "{act}: largest difference {diff}");
        // A mask with a hole is not right padding.
        let holed =
            Tensor::from_vec((0..s as u32).map(|i| u32::from(i != 3)).collect::<Vec<_>>(), (1, s), &Device::Cpu)
                .unwrap();
        assert!(ours.forward(&ids.narrow(0, 0, 1).unwrap(), &holed).is_err());
    }
}
