//! Images in requests (`[request] images`): what a rendered value points at, reading and
//! checking image files against the provider's limits, embedding them as data URLs, shrinking
//! them to fit, and the tokens each costs by the model's own rule.

pub mod data_url;
pub mod image_embedder;
pub mod image_facts;
pub mod image_fit;
pub mod image_reference;
#[cfg(test)]
mod test_pictures;
pub mod vision_tokens;

pub use image_embedder::{ImageEmbedder, ImageInput, RowImage};
pub use vision_tokens::{RuleSource, VisionTokenRule, vision_rule_of};
