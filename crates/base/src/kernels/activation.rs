//! Element-wise activations for transformer inference, written as branch-free
//! loops over slices so the compiler vectorises them (candle's own `gelu_erf`
//! calls a scalar `erf` per element, and its softmax a scalar `exp`: the
//! largest non-matmul costs of a BERT forward pass).

/// erf(x) as a rational function of x on [-4, 4] (beyond it erf is ±1 in
/// f32): x·P(x²)/Q(x²) with Eigen's single-precision minimax coefficients,
/// accurate to a few ulp. No branches, and plain multiply-adds rather than
/// `mul_add` (a library call unless the build targets FMA), so slices of it
/// vectorise.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_473_9e-2;
    x * p / q
}

/// GELU with the exact (erf) form, x·(1 + erf(x/√2))/2, in place — BERT's
/// `hidden_act: "gelu"`.
pub fn gelu_erf(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// e^x for x ≤ 88 (below -87 it is 0), Cephes' single-precision method:
/// x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by a degree-6 polynomial, 2^n put
/// straight into the exponent bits. Rounding by adding and subtracting
/// 1.5·2²³ and the integer conversion keep it branch-free and vectorisable
/// on plain SSE2 (f32::floor is a library call there). Within 2 ulp.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// Softmax of a row in place: e^(x − max) / Σ. Eight running maxima and
/// sums, so both reductions vectorise.
pub fn softmax(xs: &mut [f32]) {
    let mut m = [f32::MIN; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            m[j] = if c[j] > m[j] { c[j] } else { m[j] };
        }
    }
    let max = chunks.remainder().iter().chain(&m).fold(f32::MIN, |a, &b| if b > a { b } else { a });
    let mut sum = [0f32; 8];
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        for j in 0..8 {
            c[j] = exp(c[j] - max);
            sum[j] += c[j];
        }
    }
    let mut total: f32 = sum.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        total += *x;
    }
    let inv = 1.0 / total;
    xs.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 from its Maclaurin series, exact enough on [-4, 4] to judge
    /// an f32 approximation.
    fn erf_reference(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_matches_the_series_everywhere() {
        let mut worst: f64 = 0.0;
        for k in -6000..=6000 {
            let x = k as f32 / 1000.0;
            let want = if x.abs() > 4.0 { (x as f64).signum() } else { erf_reference(x as f64) };
            worst = worst.max((erf(x) as f64 - want).abs());
        }
        assert!(worst < 5e-7, "largest error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(-1.0), -erf(1.0));
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst: f64 = 0.0;
        for k in -87_000..=88_000 {
            let x = k as f32 / 1000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "largest relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), exp(-87.0));
    }

    #[test]
    fn softmax_sums_to_one_in_order() {
        for n in [1, 7, 8, 19] {
            let mut xs: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
            let max = xs.iter().cloned().fold(f32::MIN, f32::max);
            let want: Vec<f64> = xs.iter().map(|&x| ((x - max) as f64).exp()).collect();
            let total: f64 = want.iter().sum();
            softmax(&mut xs);
            for (g, w) in xs.iter().zip(&want) {
                assert!((*g as f64 - w / total).abs() < 1e-7, "n {n}: {g} vs {}", w / total);
            }
        }
    }

    #[test]
    fn gelu_has_its_known_values() {
        let mut xs = [0.0, 1.0, -1.0, 3.0, -10.0, 10.0];
        gelu_erf(&mut xs);
        // x·Φ(x): Φ(1) = 0.841344746, Φ(3) = 0.998650102.
        let want = [0.0, 0.841_344_7, -0.158_655_25, 2.995_950_3, 0.0, 10.0];
        for (g, w) in xs.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
