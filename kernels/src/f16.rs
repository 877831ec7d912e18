//! IEEE half and bfloat16 conversions, bit-exact with the hardware paths ggml uses on x86
//! (F16C `vcvtph2ps`/`vcvtps2ph` with round-to-nearest-even) and with `ggml_compute_fp32_to_bf16`.

/// Half → f32 (exact; NaN payloads kept, like F16C).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1F) as u32;
    let man = (h & 0x3FF) as u32;
    let bits = if exp == 0x1F {
        sign | 0x7F80_0000 | (man << 13)
    } else if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal half: value = man * 2^-24, exactly representable as f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
    } else {
        sign | ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// [`f16_to_f32`] without branches, for the kernels' inner loops (the same value, bit for bit,
/// for all 65536 halves). No denormal f32 is ever an operand (x86 takes a slow assist for one,
/// and Q4_K's `dmin` is often a subnormal half): a normal half is rebiased in the integer bits,
/// a subnormal one is its mantissa times 2^-24, inf/NaN get the all-ones exponent.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // reason: the wasm32 kernels' form; natively only tested.
#[inline(always)]
pub fn f16_to_f32_fast(h: u16) -> f32 {
    let h = h as u32;
    let (em, sign) = (h & 0x7FFF, (h & 0x8000) << 16);
    let normal = (em << 13) + (112 << 23);
    let sub = ((h & 0x3FF) as f32 * (1.0 / 16_777_216.0)).to_bits();
    let bits = if em < 0x0400 { sub } else if em >= 0x7C00 { normal | 0x7F80_0000 } else { normal };
    f32::from_bits(bits | sign)
}

/// f32 → half, round to nearest even; overflow → ±inf; NaN → quiet NaN keeping the top payload bits
/// (what F16C `vcvtps2ph` with imm 0 does, and so ggml's `GGML_FP32_TO_FP16` on x86).
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32;
    let man = b & 0x7F_FFFF;
    if exp == 0xFF {
        if man == 0 {
            return sign | 0x7C00;
        }
        return sign | 0x7E00 | (man >> 13) as u16;
    }
    let e = exp - 127 + 15;
    if e >= 0x1F {
        return sign | 0x7C00;
    }
    if e <= 0 {
        // Subnormal or zero half: shift the full significand (with implicit 1) right, then RNE.
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32; // 24-bit significand → 10-bit at exponent -14
        let half = 1u32 << (shift - 1);
        let rem = m & ((1u32 << shift) - 1);
        let mut q = m >> shift;
        if rem > half || (rem == half && (q & 1) == 1) {
            q += 1;
        }
        return sign | q as u16;
    }
    let mut q = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1FFF;
    if rem > 0x1000 || (rem == 0x1000 && (q & 1) == 1) {
        q += 1; // may carry into the exponent, up to inf: correct RNE behaviour
    }
    sign | q as u16
}

/// bfloat16 → f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 → bfloat16 as `ggml_compute_fp32_to_bf16` (ggml-impl.h): NaN forced quiet, else round to
/// nearest even.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7FFF_FFFF) > 0x7F80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7FFF + ((u >> 16) & 1)) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_roundtrip_all_halves() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
            } else {
                assert_eq!(f32_to_f16(f), h, "h={h:#x}");
            }
        }
    }

    #[test]
    fn f16_fast_matches_reference_on_all_halves() {
        for h in 0..=u16::MAX {
            assert_eq!(f16_to_f32_fast(h).to_bits(), f16_to_f32(h).to_bits(), "h={h:#x}");
        }
    }

    #[test]
    fn f16_rounding() {
        // 1 + 2^-11 is exactly halfway between 1 and 1+2^-10: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3C00);
        assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3C02);
        assert_eq!(f32_to_f16(65520.0), 0x7C00);
        assert_eq!(f32_to_f16(65519.0), 0x7BFF);
        assert_eq!(f32_to_f16(5.960_464_5e-8), 0x0001);
        assert_eq!(f32_to_f16(2.980_232_2e-8), 0x0000); // half of the smallest subnormal: ties to 0
    }

    #[test]
    fn bf16_rne() {
        assert_eq!(f32_to_bf16(1.0), 0x3F80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7F80_0001)), 0x7FC0);
    }
}
