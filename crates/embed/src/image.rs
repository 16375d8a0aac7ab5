//! Image input for CLIP: decoding with the `image` crate (JPEG, PNG, WebP, GIF,
//! BMP), a size check before any pixel is decoded, and preprocessing exactly as
//! the model folder's `preprocessor_config.json` says: resize so the shortest
//! side is `size`, center crop, rescale, normalise, channels first.
//!
//! The resize reproduces Pillow's resampling to the bit (coefficients as Pillow
//! computes them, fixed point with 22 fractional bits, horizontal pass then
//! vertical), because that is what the reference preprocessing runs; the
//! `image` crate's own filters differ by a grey level here and there, which
//! moves embeddings by more than the 1e-4 the tests hold them to.

use image::{ImageReader, RgbImage};
use serde_json::Value;

use pgrec_base::error::{Error, ErrorKind, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Filter {
    Bilinear,
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// What `preprocessor_config.json` asks for.
#[derive(Clone, Debug)]
pub struct Preprocess {
    resize: Option<usize>,
    filter: Filter,
    crop: Option<(usize, usize)>,
    rescale: Option<f64>,
    normalize: Option<([f32; 3], [f32; 3])>,
    /// Side of the square the vision tower takes.
    pub image_size: usize,
}

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::InvalidParameterValue, format!("preprocessor_config.json: {msg}"))
}

/// `size` / `crop_size` as an integer, `{"shortest_edge": n}` or `{"height", "width"}`.
fn side(v: &Value, key: &str) -> Result<Option<(usize, usize)>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_u64().map(|n| (n as usize, n as usize))),
        Some(o) => {
            let get = |k: &str| o.get(k).and_then(Value::as_u64).map(|n| n as usize);
            match (get("shortest_edge"), get("height"), get("width")) {
                (Some(s), _, _) => Ok(Some((s, s))),
                (None, Some(h), Some(w)) => Ok(Some((h, w))),
                _ => Err(bad(format!("{key} {o} is not understood"))),
            }
        }
    }
}

impl Preprocess {
    // CLIP's normalisation constants as OpenAI published them, digit for digit.
    #[allow(clippy::excessive_precision)]
    pub fn from_json(v: &Value, image_size: usize) -> Result<Preprocess> {
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(true);
        let filter = match v.get("resample").and_then(Value::as_u64).unwrap_or(3) {
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            r => {
                return Err(Error::new(
                    ErrorKind::FeatureNotSupported,
                    format!(
                        "preprocessor_config.json: resample {r} is not supported (2, bilinear, and 3, bicubic, are)"
                    ),
                ));
            }
        };
        let three = |k: &str, default: [f32; 3]| -> Result<[f32; 3]> {
            match v.get(k).and_then(Value::as_array) {
                None => Ok(default),
                Some(a) if a.len() == 3 => {
                    let mut out = [0f32; 3];
                    for (o, x) in out.iter_mut().zip(a) {
                        *o = x.as_f64().ok_or_else(|| bad(format!("{k} must hold numbers")))? as f32;
                    }
                    Ok(out)
                }
                Some(_) => Err(bad(format!("{k} must have 3 values"))),
            }
        };
        let size = side(v, "size")?;
        let crop = side(v, "crop_size")?;
        let p = Preprocess {
            resize: if flag("do_resize") { Some(size.map_or(image_size, |s| s.0.min(s.1))) } else { None },
            filter,
            crop: if flag("do_center_crop") { Some(crop.unwrap_or((image_size, image_size))) } else { None },
            rescale: if flag("do_rescale") {
                Some(v.get("rescale_factor").and_then(Value::as_f64).unwrap_or(1.0 / 255.0))
            } else {
                None
            },
            normalize: if flag("do_normalize") {
                Some((
                    three("image_mean", [0.481_454_66, 0.457_827_5, 0.408_210_73])?,
                    three("image_std", [0.268_629_54, 0.261_302_58, 0.275_777_1])?,
                ))
            } else {
                None
            },
            image_size,
        };
        if p.crop != Some((image_size, image_size)) {
            return Err(bad(format!("crop_size must be the model's image_size {image_size}")));
        }
        Ok(p)
    }

    /// The model's input for one encoded image: 3 × size × size floats.
    pub fn pixels(&self, bytes: &[u8], max_pixels: u64) -> Result<Vec<f32>> {
        let img = decode(bytes, max_pixels)?;
        let img = match self.resize {
            Some(s) => {
                let (w, h) = (img.width() as usize, img.height() as usize);
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                // As the reference computes it: the long side truncated.
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                let (nw, nh) = if w <= h { (s, new_long) } else { (new_long, s) };
                resample(&img, nw.max(1), nh.max(1), self.filter)
            }
            None => img,
        };
        let (cw, ch) = self.crop.map_or((img.width() as usize, img.height() as usize), |(h, w)| (w, h));
        let top = (img.height() as i64 - ch as i64).div_euclid(2);
        let left = (img.width() as i64 - cw as i64).div_euclid(2);
        let mut out = vec![0f32; 3 * ch * cw];
        for y in 0..ch {
            for x in 0..cw {
                let (sy, sx) = (y as i64 + top, x as i64 + left);
                let inside = sy >= 0 && sx >= 0 && sy < img.height() as i64 && sx < img.width() as i64;
                for c in 0..3 {
                    let v = if inside { img.get_pixel(sx as u32, sy as u32).0[c] } else { 0 };
                    // Rescaled in double, then single precision, as the reference does.
                    let mut f = match self.rescale {
                        Some(r) => (f64::from(v) * r) as f32,
                        None => f32::from(v),
                    };
                    if let Some((mean, std)) = &self.normalize {
                        f = (f - mean[c]) / std[c];
                    }
                    out[c * ch * cw + y * cw + x] = f;
                }
            }
        }
        Ok(out)
    }
}

/// Decodes `bytes` to RGB, refusing images over `max_pixels` before decoding.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let not_image = || {
        Error::new(ErrorKind::InvalidBinaryRepresentation, "the bytes are not an image in a supported format")
            .with_hint("embed_image reads JPEG, PNG, WebP, GIF and BMP")
    };
    let reader = || ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|_| not_image());
    let r = reader()?;
    if r.format().is_none() {
        return Err(not_image());
    }
    let (w, h) = r.into_dimensions().map_err(|e| {
        Error::new(ErrorKind::InvalidBinaryRepresentation, format!("the image header cannot be read: {e}"))
    })?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(Error::new(
            ErrorKind::ProgramLimitExceeded,
            format!("image of {w} x {h} pixels exceeds pgrec.max_image_pixels ({max_pixels})"),
        )
        .with_hint("raise pgrec.max_image_pixels to accept larger images"));
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(pixels.saturating_mul(16).max(1 << 20));
    r.limits(limits);
    let img = r
        .decode()
        .map_err(|e| Error::new(ErrorKind::InvalidBinaryRepresentation, format!("the image cannot be decoded: {e}")))?;
    Ok(img.to_rgb8())
}

/// Pillow's fixed-point precision for 8-bit images.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index, and fixed-point weights.
fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // Truncation toward zero, as C's (int) cast.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            let w: Vec<f64> =
                (0..xmax.max(0)).map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            let kk = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let f = k * f64::from(1u32 << PRECISION_BITS);
                    (if k < 0.0 { f - 0.5 } else { f + 0.5 }) as i32
                })
                .collect();
            (xmin as usize, kk)
        })
        .collect()
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes like Pillow's `Image.resize((w, h), resample)` on an RGB image:
/// two separable passes, vertical first when the height shrinks by more than
/// twice as many pixels as the width (Pillow 12 and later choose the order so;
/// the order changes the rounding).
fn resample(img: &RgbImage, w: usize, h: usize, filter: Filter) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let vertical_first = ih > h && (ih - h) as i64 > 2 * (iw as i64 - w as i64);
    let mut cur = (img.as_raw().clone(), iw, ih);
    let passes: [bool; 2] = if vertical_first { [false, true] } else { [true, false] };
    for horizontal in passes {
        cur = if horizontal && w != cur.1 {
            (pass(&cur.0, cur.1, cur.2, w, true, filter), w, cur.2)
        } else if !horizontal && h != cur.2 {
            (pass(&cur.0, cur.1, cur.2, h, false, filter), cur.1, h)
        } else {
            cur
        };
    }
    RgbImage::from_raw(w as u32, h as u32, cur.0).unwrap_or_default()
}

/// One pass over a `w` × `h` RGB buffer, resampling rows (`horizontal`) or
/// columns to `out` pixels.
fn pass(src: &[u8], w: usize, h: usize, out: usize, horizontal: bool, filter: Filter) -> Vec<u8> {
    let co = coefficients(if horizontal { w } else { h }, out, filter);
    let (ow, oh) = if horizontal { (out, h) } else { (w, out) };
    let mut dst = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (first, kk) = &co[if horizontal { x } else { y }];
            for c in 0..3 {
                let mut ss = 1i32 << (PRECISION_BITS - 1);
                for (t, &k) in kk.iter().enumerate() {
                    let (sx, sy) = if horizontal { (first + t, y) } else { (x, first + t) };
                    ss += i32::from(src[(sy * w + sx) * 3 + c]) * k;
                }
                dst[(y * ow + x) * 3 + c] = clip8(ss);
            }
        }
    }
    dst
}
