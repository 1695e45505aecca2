//! `rotation`: a random 3-D rotation of each sensor's xyz triplets (Um et al. 2017: axis drawn
//! uniformly from [-1, 1]³ and normalised, angle uniform in [-π, π], each time step's row vector
//! multiplied by the rotation matrix). All triplets of one sensor — e.g. a phone's accelerometer
//! and gyroscope — get the same rotation, since they turn together; each sensor draws its own.
//! The drawn axes and angles are stored in the `rotation_axes` and `rotation_angles` columns.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::{floats, param, Drawn, ParamColumn, ParamKind};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Channels of each sensor, as consecutive xyz triplets: `[[0, 1, 2, 3, 4, 5]]` is one sensor
    /// whose channels 0-2 and 3-5 (e.g. acc and gyro) rotate together.
    #[serde(default = "default_sensors")]
    pub sensors: Vec<Vec<usize>>,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_sensors() -> Vec<Vec<usize>> {
    vec![vec![0, 1, 2, 3, 4, 5]]
}

pub const COLUMNS: &[ParamColumn] = &[
    param(
        "rotation_axes",
        ParamKind::FloatList,
        "rotation: the axis drawn for each sensor before normalisation, 3 values per sensor",
    ),
    param("rotation_angles", ParamKind::FloatList, "rotation: the angle in radians drawn for each sensor"),
];

impl RotationConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.sensors.is_empty() {
            problems.push("sensors must name at least one sensor".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (index, sensor) in self.sensors.iter().enumerate() {
            if sensor.is_empty() || sensor.len() % 3 != 0 {
                problems.push(format!(
                    "sensor {}: needs xyz triplets (a multiple of 3 channels), got {}",
                    index + 1,
                    sensor.len()
                ));
            }
            for channel in sensor {
                if !seen.insert(*channel) {
                    problems.push(format!("sensor {}: channel {channel} is already used", index + 1));
                }
            }
        }
        problems
    }

    /// Checks the sensors against the sample shape (channels first).
    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        let channels = shape.first().copied().unwrap_or(0);
        match self.sensors.iter().flatten().find(|&&c| c >= channels) {
            Some(c) => Err(format!("channel {c} does not exist: the samples have {channels} channels")),
            None if shape.len() != 2 => Err(format!("needs series (channels × time), got shape {shape:?}")),
            None => Ok(()),
        }
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let length = shape[1];
        let (mut axes, mut angles) = (Vec::new(), Vec::new());
        for sensor in &self.sensors {
            let axis: [f64; 3] = [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)];
            let angle: f64 = rng.gen_range(-std::f64::consts::PI..std::f64::consts::PI);
            let matrix = axis_angle_matrix(axis, angle);
            for triplet in sensor.chunks(3) {
                for t in 0..length {
                    let v = [
                        input[triplet[0] * length + t],
                        input[triplet[1] * length + t],
                        input[triplet[2] * length + t],
                    ];
                    for (column, &channel) in triplet.iter().enumerate() {
                        // Row vector times matrix: out[j] = Σ_i v[i] · R[i][j].
                        let value = (0..3).map(|i| v[i] as f64 * matrix[i][column]).sum::<f64>();
                        input[channel * length + t] = value as f32;
                    }
                }
            }
            axes.extend_from_slice(&axis);
            angles.push(angle);
        }
        vec![("rotation_axes", floats(&axes)), ("rotation_angles", floats(&angles))]
    }
}

/// The rotation matrix of `angle` radians about `axis` (normalised here), by Rodrigues' formula,
/// as transforms3d's `axangle2mat` computes it.
pub fn axis_angle_matrix(axis: [f64; 3], angle: f64) -> [[f64; 3]; 3] {
    let norm = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt().max(f64::MIN_POSITIVE);
    let [x, y, z] = [axis[0] / norm, axis[1] / norm, axis[2] / norm];
    let (s, c) = angle.sin_cos();
    let t = 1.0 - c;
    [
        [t * x * x + c, t * x * y - z * s, t * x * z + y * s],
        [t * x * y + z * s, t * y * y + c, t * y * z - x * s],
        [t * x * z - y * s, t * y * z + x * s, t * z * z + c],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::params::find;
    use rand::SeedableRng;

    fn signal() -> Vec<f32> {
        (0..6 * 16).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect()
    }

    #[test]
    fn keeps_each_triplets_norm_and_shares_the_rotation_within_a_sensor() {
        let config = RotationConfig { sensors: default_sensors(), p: 1.0 };
        let original = signal();
        for seed in 0..20 {
            let mut rotated = original.clone();
            let params = config.apply(&mut OpRng::seed_from_u64(seed), &mut rotated, &[6, 16]);
            assert_eq!(find(&params, "rotation_angles").unwrap().as_floats().unwrap().len(), 1);
            assert_eq!(find(&params, "rotation_axes").unwrap().as_floats().unwrap().len(), 3);
            for triplet in [[0, 1, 2], [3, 4, 5]] {
                for t in 0..16 {
                    let norm = |x: &[f32]| triplet.iter().map(|&c| (x[c * 16 + t] as f64).powi(2)).sum::<f64>().sqrt();
                    assert!((norm(&original) - norm(&rotated)).abs() < 1e-4, "seed {seed}, t {t}");
                }
            }
            // Same rotation for both triplets: the dot product between acc and gyro is kept.
            for t in 0..16 {
                let dot = |x: &[f32]| (0..3).map(|i| x[i * 16 + t] as f64 * x[(i + 3) * 16 + t] as f64).sum::<f64>();
                assert!((dot(&original) - dot(&rotated)).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn matches_the_reference_matrix_for_explicit_draws() {
        // A quarter turn about z maps the row vector (1, 0, 0) to (0, -1, 0) under v · R.
        let r = axis_angle_matrix([0.0, 0.0, 2.0], std::f64::consts::FRAC_PI_2);
        let v = [1.0, 0.0, 0.0];
        let out: Vec<f64> = (0..3).map(|j| (0..3).map(|i| v[i] * r[i][j]).sum()).collect();
        assert!((out[0]).abs() < 1e-12 && (out[1] + 1.0).abs() < 1e-12 && out[2].abs() < 1e-12, "{out:?}");
        // Orthonormal with determinant 1 for an arbitrary axis.
        let r = axis_angle_matrix([0.3, -0.8, 0.5], 2.1);
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        assert!((det - 1.0).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_output_other_seed_other_output() {
        let config = RotationConfig { sensors: vec![vec![0, 1, 2], vec![3, 4, 5]], p: 1.0 };
        let run = |seed| {
            let mut x = signal();
            config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[6, 16]);
            x
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn rejects_incomplete_triplets_and_missing_channels() {
        let config = RotationConfig { sensors: vec![vec![0, 1], vec![1, 2, 3]], p: 1.0 };
        let problems = config.validate();
        assert!(problems.iter().any(|p| p.contains("multiple of 3")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("channel 1 is already used")), "{problems:?}");
        let config = RotationConfig { sensors: default_sensors(), p: 1.0 };
        assert!(config.check_shape(&[3, 100]).unwrap_err().contains("channel 3 does not exist"));
        assert!(config.check_shape(&[6, 100]).is_ok());
    }
}
