//! Names and shapes of the built-in network architectures shared by teachers and students:
//! `cnn1d` for series (channels × time), `cnn2d` for images (channels × height × width), `mlp` for
//! either and the CIFAR-style `resnet` (depth 6n + 2) for either. An [`ArchSpec`] fully describes a
//! network and is saved as JSON beside its weights; the networks themselves live in the torch crate.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The family of a built-in network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArchKind {
    Cnn1d,
    Cnn2d,
    Mlp,
    Resnet,
}

impl ArchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchKind::Cnn1d => "cnn1d",
            ArchKind::Cnn2d => "cnn2d",
            ArchKind::Mlp => "mlp",
            ArchKind::Resnet => "resnet",
        }
    }
}

/// Everything needed to rebuild a built-in network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    pub kind: ArchKind,
    /// Channels of the first layer (cnn) or units per hidden layer (mlp).
    pub width: i64,
    /// Hidden layers (mlp) or convolution blocks (cnn, at least 2).
    pub depth: i64,
    pub input_shape: Vec<i64>,
    pub classes: i64,
}

impl ArchSpec {
    /// Checks that the architecture fits the input it is given.
    pub fn check(&self) -> Result<(), String> {
        match self.kind {
            ArchKind::Cnn1d if self.input_shape.len() != 2 => {
                Err(format!("cnn1d needs inputs of channels × time, got shape {:?}", self.input_shape))
            }
            ArchKind::Cnn2d if self.input_shape.len() != 3 => {
                Err(format!("cnn2d needs inputs of channels × height × width, got shape {:?}", self.input_shape))
            }
            ArchKind::Resnet if !matches!(self.input_shape.len(), 2 | 3) => {
                Err(format!("resnet needs series or images, got shape {:?}", self.input_shape))
            }
            ArchKind::Resnet => blocks_per_stage(self.depth).map(|_| ()),
            _ if self.width < 1 || self.depth < 1 => {
                Err(format!("width and depth must be >= 1, got {} and {}", self.width, self.depth))
            }
            _ => Ok(()),
        }
    }

    pub fn describe(&self) -> String {
        format!("{}(width={}, depth={})", self.kind.as_str(), self.width, self.depth)
    }
}

/// Blocks per stage of a resnet of depth 6n + 2, or why the depth is not one.
pub fn blocks_per_stage(depth: i64) -> Result<i64, String> {
    if depth >= 8 && (depth - 2) % 6 == 0 {
        Ok((depth - 2) / 6)
    } else {
        Err(format!("resnet depth must be 6n + 2 (8, 14, 20, …), got {depth}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cnn1d_rejects_images() {
        let spec = ArchSpec { kind: ArchKind::Cnn1d, width: 4, depth: 2, input_shape: vec![1, 8, 8], classes: 3 };
        assert!(spec.check().unwrap_err().contains("channels × time"));
    }

    #[test]
    fn resnet_depths_are_6n_plus_2() {
        assert_eq!(blocks_per_stage(8), Ok(1));
        assert_eq!(blocks_per_stage(20), Ok(3));
        assert!(blocks_per_stage(10).is_err());
    }
}
