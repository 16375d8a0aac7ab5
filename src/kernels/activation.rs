//! Element-wise activations for transformer inference, written as branch-free
//! loops over slices so the compiler vectorises them (candle's own `gelu_erf`
//! calls a scalar `erf` per element, the largest non-matmul cost of a BERT
//! forward pass).

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
