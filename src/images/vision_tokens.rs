//! How many prompt tokens an image costs: the provider's own rule for the model, from the
//! image's width and height. The estimate, the budget's upper bound and the simulator all count
//! with this one rule, so an estimate of an embedded image equals what is billed.
//!
//! Sources (`prices-and-vision.md` §3): Qwen-VL (Model Studio 图像与视频理解 page and its token
//! sample code): each side rounded (half to even, as Python's `round`) to a multiple of the patch
//! size, scaled down past the pixel cap or up to four patches, one token per patch plus 2 for the
//! `<vision_bos>`/`<vision_eos>` markers; 32×32 patches for Qwen3-VL, qwen-vl-max and
//! qwen-vl-plus (cap 2,621,440 px, or 16,777,216 with `vl_high_resolution_images`), 28×28 for
//! QVQ and Qwen2.5-VL (1,003,520 px, or 12,845,056). Qwen 3.5 and later read images natively; no
//! official rule was found for them, so they count as Qwen3-VL does (a third-party listing gives
//! the same default cap). OpenAI tile models (images guide): fit within 2048×2048, shortest side
//! down to 768, then a base plus a price per 512-pixel tile.

/// A model's rule for counting an image's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionTokenRule {
    /// Qwen-VL: one token per `patch`×`patch` pixels of the resized image, plus 2.
    QwenPatches {
        patch: u32,
        default_max_pixels: u64,
        high_resolution_max_pixels: u64,
    },
    /// OpenAI's tile models at `auto`/`high` detail: `base` + `per_tile` per 512-pixel tile.
    OpenaiTiles { base: u64, per_tile: u64 },
}

/// Qwen3-VL, qwen-vl-max, qwen-vl-plus and (by assumption) Qwen 3.5 and later.
pub const QWEN_32_PIXEL_PATCHES: VisionTokenRule = VisionTokenRule::QwenPatches {
    patch: 32,
    default_max_pixels: 2_621_440,
    high_resolution_max_pixels: 16_777_216,
};

/// QVQ and the Qwen2.5-VL family.
pub const QWEN_28_PIXEL_PATCHES: VisionTokenRule = VisionTokenRule::QwenPatches {
    patch: 28,
    default_max_pixels: 1_003_520,
    high_resolution_max_pixels: 12_845_056,
};

/// Markers around every image's patches (`<vision_bos>`, `<vision_eos>`).
const QWEN_IMAGE_MARKER_TOKENS: u64 = 2;

/// Whether the rule of `model` is the provider's documented one, or dashbatch's assumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    Documented,
    /// dashbatch knows no rule of the model's own (none is published, or it is OpenAI's patch
    /// rule, whose budgets the guide states inconsistently); Qwen3-VL's is used.
    Assumed,
}

/// The rule `model` counts image tokens with, and whether it is documented for that model.
#[must_use]
pub fn vision_rule_of(model: &str) -> (VisionTokenRule, RuleSource) {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|prefix| name.starts_with(prefix));
    if starts(&["qwen3-vl", "qwen-vl-max", "qwen-vl-plus"]) {
        return (QWEN_32_PIXEL_PATCHES, RuleSource::Documented);
    }
    if starts(&["qvq", "qwen2.5-vl", "qwen2-vl", "qwen-vl-ocr"]) {
        return (QWEN_28_PIXEL_PATCHES, RuleSource::Documented);
    }
    if starts(&["gpt-4o-mini"]) {
        return (
            VisionTokenRule::OpenaiTiles {
                base: 2833,
                per_tile: 5667,
            },
            RuleSource::Documented,
        );
    }
    let is_mini_or_nano = name.contains("-mini") || name.contains("-nano");
    if !is_mini_or_nano {
        if starts(&["gpt-4o", "gpt-4.1"]) {
            return (
                VisionTokenRule::OpenaiTiles {
                    base: 85,
                    per_tile: 170,
                },
                RuleSource::Documented,
            );
        }
        if name == "gpt-5" || starts(&["gpt-5-", "gpt-5.1"]) {
            return (
                VisionTokenRule::OpenaiTiles {
                    base: 70,
                    per_tile: 140,
                },
                RuleSource::Documented,
            );
        }
        if starts(&["o1", "o3"]) {
            return (
                VisionTokenRule::OpenaiTiles {
                    base: 75,
                    per_tile: 150,
                },
                RuleSource::Documented,
            );
        }
    }
    (QWEN_32_PIXEL_PATCHES, RuleSource::Assumed)
}

impl VisionTokenRule {
    /// The tokens an image of `width`×`height` pixels costs.
    #[must_use]
    pub fn image_tokens(&self, width: u32, height: u32, high_resolution: bool) -> u64 {
        match *self {
            VisionTokenRule::QwenPatches { patch, .. } => {
                let (resized_width, resized_height) =
                    self.resized_size(width, height, high_resolution);
                u64::from(resized_width) * u64::from(resized_height)
                    / (u64::from(patch) * u64::from(patch))
                    + QWEN_IMAGE_MARKER_TOKENS
            }
            VisionTokenRule::OpenaiTiles { base, per_tile } => {
                let (mut fitted_width, mut fitted_height) = (f64::from(width), f64::from(height));
                let longest = fitted_width.max(fitted_height);
                if longest > 2048.0 {
                    fitted_width *= 2048.0 / longest;
                    fitted_height *= 2048.0 / longest;
                }
                let shortest = fitted_width.min(fitted_height);
                if shortest > 768.0 {
                    fitted_width *= 768.0 / shortest;
                    fitted_height *= 768.0 / shortest;
                }
                let tiles = (fitted_width.round() / 512.0).ceil() as u64
                    * (fitted_height.round() / 512.0).ceil() as u64;
                base + per_tile * tiles
            }
        }
    }

    /// The most tokens one image can cost (any size): what an image the estimate cannot see (a
    /// URL) is counted at.
    #[must_use]
    pub fn most_image_tokens(&self, high_resolution: bool) -> u64 {
        match *self {
            VisionTokenRule::QwenPatches { patch, .. } => {
                self.max_pixels(high_resolution) / (u64::from(patch) * u64::from(patch))
                    + QWEN_IMAGE_MARKER_TOKENS
            }
            // 2048×768 fits 4×2 tiles: the most any image fitted to 2048 and 768 covers.
            VisionTokenRule::OpenaiTiles { base, per_tile } => base + per_tile * 8,
        }
    }

    /// The most pixels the model reads of one image; larger images are scaled down by the
    /// provider, so sending more only costs bytes.
    #[must_use]
    pub fn max_pixels(&self, high_resolution: bool) -> u64 {
        match *self {
            VisionTokenRule::QwenPatches {
                default_max_pixels,
                high_resolution_max_pixels,
                ..
            } => {
                if high_resolution {
                    high_resolution_max_pixels
                } else {
                    default_max_pixels
                }
            }
            VisionTokenRule::OpenaiTiles { .. } => 2048 * 768,
        }
    }

    /// The tokens of an `image_url` content part: an embedded (`data:`) image by its size, an
    /// image the provider fetches by URL at the most one image can cost (its size is not known
    /// before the provider fetches it).
    ///
    /// # Errors
    /// A data URL that does not decode to an image of a supported format.
    pub fn image_url_tokens(&self, url: &str, high_resolution: bool) -> Result<u64, String> {
        if !crate::images::data_url::is_data_url(url) {
            return Ok(self.most_image_tokens(high_resolution));
        }
        let decoded = crate::images::data_url::decode_data_url(url)?;
        let facts = crate::images::image_facts::inspect_image(&decoded.bytes, false)
            .map_err(|problem| format!("the image {problem}"))?;
        Ok(self.image_tokens(facts.width, facts.height, high_resolution))
    }

    /// The size a Qwen model resizes an image to before cutting it into patches (the input
    /// size for other rules).
    #[must_use]
    pub fn resized_size(&self, width: u32, height: u32, high_resolution: bool) -> (u32, u32) {
        let VisionTokenRule::QwenPatches { patch, .. } = *self else {
            return (width, height);
        };
        let factor = f64::from(patch);
        let (width, height) = (f64::from(width), f64::from(height));
        let max_pixels = self.max_pixels(high_resolution) as f64;
        let min_pixels = 4.0 * factor * factor;
        let mut resized_height = (height / factor).round_ties_even() * factor;
        let mut resized_width = (width / factor).round_ties_even() * factor;
        if resized_height * resized_width > max_pixels {
            let beta = (height * width / max_pixels).sqrt();
            resized_height = (height / beta / factor).floor() * factor;
            resized_width = (width / beta / factor).floor() * factor;
        } else if resized_height * resized_width < min_pixels {
            let beta = (min_pixels / (height * width)).sqrt();
            resized_height = (height * beta / factor).ceil() * factor;
            resized_width = (width * beta / factor).ceil() * factor;
        }
        (resized_width as u32, resized_height as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_images_cost_one_token_per_patch_of_the_resized_image_plus_two() {
        let rule = QWEN_32_PIXEL_PATCHES;
        // 1024×1024: already a multiple of 32; 32×32 patches = 1024, + 2.
        assert_eq!(rule.image_tokens(1024, 1024, false), 1026);
        // 512×512 (scikit-image's astronaut): 256 patches.
        assert_eq!(rule.image_tokens(512, 512, false), 258);
        // 300×451 (chelsea): 300/32 = 9.375 → 9; 451/32 = 14.09 → 14: 126 patches.
        assert_eq!(rule.image_tokens(451, 300, false), 128);
        // Rounding is half to even: 80/32 = 2.5 → 2, 112/32 = 3.5 → 4.
        assert_eq!(rule.resized_size(80, 112, false), (64, 128));
        // A tiny image is scaled up to four patches.
        assert_eq!(rule.image_tokens(11, 11, false), 6);
        // Past the cap (4000×3000 = 12 Mpx > 2,621,440): scaled down, each side floored.
        let (width, height) = rule.resized_size(4000, 3000, false);
        assert!(u64::from(width) * u64::from(height) <= 2_621_440);
        assert_eq!((width, height), (1856, 1376));
        assert_eq!(rule.image_tokens(4000, 3000, false), 1856 * 1376 / 1024 + 2);
        // High resolution raises the cap: 4000×3000 fits under 16,777,216 px.
        assert_eq!(
            rule.image_tokens(4000, 3000, true),
            4000 * 3008 / 1024 + 2 // 3000/32 = 93.75 → 94 patches high
        );
        assert_eq!(rule.most_image_tokens(false), 2562);
        assert_eq!(rule.most_image_tokens(true), 16386);
    }

    #[test]
    fn qwen_2_5_vl_counts_28_pixel_patches() {
        let rule = QWEN_28_PIXEL_PATCHES;
        assert_eq!(rule.image_tokens(280, 280, false), 102);
        assert_eq!(rule.most_image_tokens(false), 1282);
        assert_eq!(rule.most_image_tokens(true), 16386);
    }

    #[test]
    fn models_get_their_documented_rule() {
        assert_eq!(
            vision_rule_of("qwen3-vl-plus"),
            (QWEN_32_PIXEL_PATCHES, RuleSource::Documented)
        );
        assert_eq!(
            vision_rule_of("qwen-vl-max-latest"),
            (QWEN_32_PIXEL_PATCHES, RuleSource::Documented)
        );
        assert_eq!(
            vision_rule_of("qvq-max"),
            (QWEN_28_PIXEL_PATCHES, RuleSource::Documented)
        );
        assert_eq!(
            vision_rule_of("qwen3.6-flash"),
            (QWEN_32_PIXEL_PATCHES, RuleSource::Assumed)
        );
        assert_eq!(
            vision_rule_of("gpt-4o").0,
            VisionTokenRule::OpenaiTiles {
                base: 85,
                per_tile: 170
            }
        );
        assert_eq!(vision_rule_of("gpt-4.1-mini").1, RuleSource::Assumed);
    }

    #[test]
    fn openai_tiles_follow_the_images_guide() {
        let (rule, _) = vision_rule_of("gpt-4o");
        // The guide's examples: 1024×1024 → 768×768, 4 tiles: 85 + 4×170 = 765.
        assert_eq!(rule.image_tokens(1024, 1024, false), 765);
        // 2048×4096 → 1024×2048 → 768×1536: 2×3 tiles = 1105.
        assert_eq!(rule.image_tokens(2048, 4096, false), 1105);
        // Small images are not scaled up: 512×512 is one tile.
        assert_eq!(rule.image_tokens(512, 512, false), 255);
    }
}
