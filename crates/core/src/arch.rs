//! Names and shapes of the built-in network architectures shared by teachers and students:
//! `cnn1d` for series (channels × time), `cnn2d` for images (channels × height × width), `mlp` for
//! either, the CIFAR-style `resnet` (depth 6n + 2) for either and an encoder-only `transformer` for
//! series (a token per time step or per patch of steps). An [`ArchSpec`] fully describes a
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
    Transformer,
}

impl ArchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchKind::Cnn1d => "cnn1d",
            ArchKind::Cnn2d => "cnn2d",
            ArchKind::Mlp => "mlp",
            ArchKind::Resnet => "resnet",
            ArchKind::Transformer => "transformer",
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
    /// Transformer: attention heads (default 2; `width` must be a multiple).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<i64>,
    /// Transformer: time steps per token (default 1; the series length must be a multiple).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<i64>,
}

impl ArchSpec {
    /// A network of `kind` with the default transformer settings.
    pub fn new(kind: ArchKind, width: i64, depth: i64, input_shape: Vec<i64>, classes: i64) -> ArchSpec {
        ArchSpec { kind, width, depth, input_shape, classes, heads: None, patch: None }
    }

    /// The transformer's attention heads.
    pub fn heads(&self) -> i64 {
        self.heads.unwrap_or(2)
    }

    /// The transformer's time steps per token.
    pub fn patch(&self) -> i64 {
        self.patch.unwrap_or(1)
    }

    /// Checks that the architecture fits the input it is given.
    pub fn check(&self) -> Result<(), String> {
        if self.kind != ArchKind::Transformer && (self.heads.is_some() || self.patch.is_some()) {
            return Err(format!(
                "heads and patch are transformer settings, and this network is a {}",
                self.kind.as_str()
            ));
        }
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
            ArchKind::Transformer => self.check_transformer(),
            _ if self.width < 1 || self.depth < 1 => {
                Err(format!("width and depth must be >= 1, got {} and {}", self.width, self.depth))
            }
            _ => Ok(()),
        }
    }

    fn check_transformer(&self) -> Result<(), String> {
        let [_, steps] = self.input_shape[..] else {
            return Err(format!("transformer needs inputs of channels × time, got shape {:?}", self.input_shape));
        };
        let (heads, patch) = (self.heads(), self.patch());
        if self.width < 1 || self.depth < 1 || heads < 1 || patch < 1 {
            return Err(format!(
                "transformer width, depth, heads and patch must be >= 1, got {}, {}, {heads} and {patch}",
                self.width, self.depth
            ));
        }
        if self.width % heads != 0 {
            return Err(format!("transformer width {} is not a multiple of its {heads} heads", self.width));
        }
        if steps % patch != 0 {
            return Err(format!("transformer patch {patch} does not divide the series' {steps} time steps"));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        match self.kind {
            ArchKind::Transformer => format!(
                "transformer(width={}, depth={}, heads={}, patch={})",
                self.width,
                self.depth,
                self.heads(),
                self.patch()
            ),
            kind => format!("{}(width={}, depth={})", kind.as_str(), self.width, self.depth),
        }
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
        let spec = ArchSpec::new(ArchKind::Cnn1d, 4, 2, vec![1, 8, 8], 3);
        assert!(spec.check().unwrap_err().contains("channels × time"));
    }

    #[test]
    fn transformer_settings_must_fit() {
        let spec =
            |heads, patch| ArchSpec { heads, patch, ..ArchSpec::new(ArchKind::Transformer, 8, 2, vec![6, 32], 3) };
        assert!(spec(None, None).check().is_ok());
        assert!(spec(Some(3), None).check().unwrap_err().contains("not a multiple of its 3 heads"));
        assert!(spec(None, Some(5)).check().unwrap_err().contains("patch 5 does not divide the series' 32"));
        let cnn = ArchSpec { patch: Some(2), ..ArchSpec::new(ArchKind::Cnn1d, 8, 2, vec![6, 32], 3) };
        assert!(cnn.check().unwrap_err().contains("transformer settings"));
    }

    #[test]
    fn resnet_depths_are_6n_plus_2() {
        assert_eq!(blocks_per_stage(8), Ok(1));
        assert_eq!(blocks_per_stage(20), Ok(3));
        assert!(blocks_per_stage(10).is_err());
    }
}
