//! `mmd`: multi-kernel maximum mean discrepancy between the student's penultimate features of the
//! groups (subjects) in a batch — the subject-alignment part of TASKED — with the arithmetic of the
//! common PyTorch `mk_mmd`/`mmd_rbf` code (`guassian_kernel` with `kernel_mul = 2`,
//! `kernel_num = 5`): for two groups X and Y, the squared distances of all rows of [X; Y], the
//! bandwidth `Σ d² / (n² − n)` (held constant) divided by `kernel_mul^(kernel_num // 2)`, the sum of
//! `exp(−d² / (bandwidth · kernel_mul^i))` over i < kernel_num, and
//! `mean(K_XX) + mean(K_YY) − mean(K_XY) − mean(K_YX)` (the official `mean(XX + YY − XY − YX)` when
//! the groups are of equal size, which that code assumes). The loss is the mean over every pair of
//! groups in the batch (0 for a batch of one group). It reads no teacher; the bandwidth is kept
//! above 1e-12 so that a batch of identical features gives 0 rather than NaN.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::positive;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MmdConfig {
    /// Ratio between the bandwidths of neighbouring kernels.
    #[serde(default = "default_kernel_mul")]
    pub kernel_mul: f64,
    /// Number of Gaussian kernels.
    #[serde(default = "default_kernel_num")]
    pub kernel_num: f64,
}

fn default_kernel_mul() -> f64 {
    2.0
}
fn default_kernel_num() -> f64 {
    5.0
}

impl MmdConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems: Vec<String> = positive("kernel_mul", self.kernel_mul).into_iter().collect();
        if !(self.kernel_num >= 1.0 && self.kernel_num.fract() == 0.0) {
            problems.push(format!("kernel_num must be a whole number >= 1, got {}", self.kernel_num));
        }
        problems
    }

    /// The mean MMD over every pair of groups; `groups[b]` is row b's group.
    pub fn compute(&self, features: &Tensor, groups: &[i64]) -> Result<Tensor, tch::TchError> {
        let features = features.f_flatten(1, -1)?;
        let mut distinct: Vec<i64> = groups.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let rows_of = |group: i64| -> Tensor {
            let rows: Vec<i64> = (0..groups.len() as i64).filter(|&b| groups[b as usize] == group).collect();
            Tensor::from_slice(&rows).to_device(features.device())
        };
        let members: Vec<Tensor> = distinct.iter().map(|&g| features.index_select(0, &rows_of(g))).collect();
        let mut total = features.sum(features.kind()) * 0.0;
        let mut pairs = 0;
        for a in 0..members.len() {
            for b in a + 1..members.len() {
                total += self.between(&members[a], &members[b])?;
                pairs += 1;
            }
        }
        Ok(if pairs == 0 { total } else { total / pairs as f64 })
    }

    /// `mk_mmd` of two groups' rows.
    pub fn between(&self, x: &Tensor, y: &Tensor) -> Result<Tensor, tch::TchError> {
        let (nx, n) = (x.size()[0], x.size()[0] + y.size()[0]);
        let total = Tensor::f_cat(&[x, y], 0)?;
        let distances = (total.unsqueeze(0) - total.unsqueeze(1)).f_pow_tensor_scalar(2)?.f_sum_dim_intlist(
            &[2i64][..],
            false,
            total.kind(),
        )?;
        let pairs = (n * n - n).max(1) as f64;
        let base = tch::no_grad(|| distances.detach().sum(Kind::Double).double_value(&[])) / pairs;
        let count = self.kernel_num as i32;
        let bandwidth = (base / self.kernel_mul.powi(count / 2)).max(1e-12);
        let mut kernels = distances.zeros_like();
        for i in 0..count {
            kernels += (-&distances / (bandwidth * self.kernel_mul.powi(i))).exp();
        }
        let block = |rows: (i64, i64), columns: (i64, i64)| {
            let part = kernels.narrow(0, rows.0, rows.1).narrow(1, columns.0, columns.1);
            part.mean(part.kind())
        };
        let (left, right) = ((0, nx), (nx, n - nx));
        Ok(block(left, left) + block(right, right) - block(left, right) - block(right, left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::value;

    #[test]
    fn zero_for_one_group_and_positive_for_shifted_groups() {
        let config = MmdConfig { kernel_mul: 2.0, kernel_num: 5.0 };
        let x = Tensor::randn([6, 4], (Kind::Double, tch::Device::Cpu));
        assert_eq!(value(&config.compute(&x, &[1; 6]).unwrap()), 0.0);
        let shifted = Tensor::cat(&[x.narrow(0, 0, 3), x.narrow(0, 3, 3) + 3.0], 0);
        let far = value(&config.compute(&shifted, &[1, 1, 1, 2, 2, 2]).unwrap());
        let near = value(&config.compute(&x, &[1, 1, 1, 2, 2, 2]).unwrap());
        assert!(far > near, "{far} vs {near}");
    }
}
