//! `cutmix` (Yun et al. 2019, the official `rand_bbox`), for images and series alike: λ ~ Beta(α, α)
//! sets the size of a box (images: sides `⌊H·√(1−λ)⌋ × ⌊W·√(1−λ)⌋`; series: `⌊T·(1−λ)⌋` steps of
//! every channel) centred on a uniformly drawn pixel or step and clipped at the borders; the box is
//! copied from the partner's raw input, and λ is recomputed from the area actually cut,
//! `λ = 1 − box area / total area`, which is what the `lam` column stores. The partner is drawn as
//! in `mixup`. The box is stored in `cutmix_y0`/`cutmix_y1` (rows; null for series) and
//! `cutmix_x0`/`cutmix_x1` (columns or steps), ends exclusive.

use rand::Rng;
use rand_distr::{Beta, Distribution};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cutout::clipped_span;
use super::image::fill_box;
use super::mixup::{draw_partner, Mix};
use super::params::{int, param, Drawn, ParamColumn, ParamKind};
use super::{default_p, MixSource, OpRng};
use crate::source::SourceError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CutmixConfig {
    /// Concentration of the symmetric Beta(α, α) that the box size is drawn from.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_alpha() -> f64 {
    1.0
}

pub const COLUMNS: &[ParamColumn] = &[
    param("cutmix_y0", ParamKind::Int, "cutmix: first row of the pasted box (images; null for series)"),
    param("cutmix_y1", ParamKind::Int, "cutmix: row after the box's last row (images; null for series)"),
    param("cutmix_x0", ParamKind::Int, "cutmix: first column (images) or step (series) of the pasted box"),
    param("cutmix_x1", ParamKind::Int, "cutmix: column or step after the box's last one"),
];

impl CutmixConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            problems.push(format!("alpha must be > 0, got {}", self.alpha));
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        match shape {
            [c, t] if *c > 0 && *t > 0 => Ok(()),
            [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok(()),
            _ => Err(format!("needs series (channels × time) or images (channels × height × width), got {shape:?}")),
        }
    }

    /// Draws the partner, λ and the box, pastes the partner's box and returns the mix with λ
    /// recomputed from the box; `None` (input untouched) when there is no partner to draw.
    pub fn apply(
        &self,
        rng: &mut OpRng,
        input: &mut [f32],
        shape: &[usize],
        sample_id: i64,
        source: &dyn MixSource,
    ) -> Result<Option<(Mix, Drawn)>, SourceError> {
        let Some(partner_id) = draw_partner(rng, sample_id, source) else { return Ok(None) };
        let drawn_lam = Beta::new(self.alpha, self.alpha).expect("alpha validated").sample(rng);
        let partner = source.raw_input(partner_id)?;
        // A series is a one-row image whose width is time.
        let (channels, height, width) = match *shape {
            [c, t] => (c, 1, t),
            [c, h, w] => (c, h, w),
            _ => unreachable!("shape checked"),
        };
        let (rows, columns) = if shape.len() == 3 {
            let cut = (1.0 - drawn_lam).sqrt();
            let (cut_h, cut_w) = ((height as f64 * cut) as usize, (width as f64 * cut) as usize);
            let (cy, cx) = (rng.gen_range(0..height), rng.gen_range(0..width));
            (clipped_span(cy, cut_h, height), clipped_span(cx, cut_w, width))
        } else {
            let cut_t = (width as f64 * (1.0 - drawn_lam)) as usize;
            ((0, 1), clipped_span(rng.gen_range(0..width), cut_t, width))
        };
        fill_box(input, (channels, height, width), rows, columns, |i| partner[i]);
        let area = (rows.1 - rows.0) * (columns.1 - columns.0);
        let lam = (1.0 - area as f64 / (height * width) as f64) as f32;
        let mut drawn = vec![("cutmix_x0", int(columns.0)), ("cutmix_x1", int(columns.1))];
        if shape.len() == 3 {
            drawn.splice(0..0, [("cutmix_y0", int(rows.0)), ("cutmix_y1", int(rows.1))]);
        }
        Ok(Some((Mix { partner_id, lam }, drawn)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::params::find;
    use rand::SeedableRng;

    use crate::augment::TestPool;

    fn pool(len: usize) -> TestPool {
        TestPool((0..3).collect(), (0..3).map(|s| (0..len).map(|i| (s * 1000 + i) as f32).collect()).collect())
    }

    #[test]
    fn image_box_comes_from_the_partner_and_lam_is_its_complement() {
        let pool = pool(2 * 8 * 10);
        let config = CutmixConfig { alpha: 1.0, p: 1.0 };
        let mut areas = 0.0;
        for seed in 0..200 {
            let mut x = pool.1[0].clone();
            let (mix, drawn) =
                config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[2, 8, 10], 0, &pool).unwrap().unwrap();
            assert_ne!(mix.partner_id, 0);
            let get = |name| find(&drawn, name).unwrap().as_int().unwrap() as usize;
            let (y0, y1, x0, x1) = (get("cutmix_y0"), get("cutmix_y1"), get("cutmix_x0"), get("cutmix_x1"));
            let area = (y1 - y0) * (x1 - x0);
            assert_eq!(mix.lam, (1.0 - area as f64 / 80.0) as f32);
            areas += area as f64 / 80.0;
            for (i, &value) in x.iter().enumerate() {
                let (y, col) = ((i % 80) / 10, i % 10);
                let inside = (y0..y1).contains(&y) && (x0..x1).contains(&col);
                let expected = if inside { pool.1[mix.partner_id as usize][i] } else { pool.1[0][i] };
                assert_eq!(value, expected);
            }
        }
        // With α = 1, 1 − λ is uniform before clipping: about a third of the area is cut on average.
        assert!((0.2..0.45).contains(&(areas / 200.0)), "mean cut area {}", areas / 200.0);
    }

    #[test]
    fn series_segment_covers_every_channel() {
        let pool = pool(3 * 50);
        let mut x = pool.1[2].clone();
        let (mix, drawn) = CutmixConfig { alpha: 0.5, p: 1.0 }
            .apply(&mut OpRng::seed_from_u64(4), &mut x, &[3, 50], 2, &pool)
            .unwrap()
            .unwrap();
        assert!(find(&drawn, "cutmix_y0").is_none());
        let x0 = find(&drawn, "cutmix_x0").unwrap().as_int().unwrap() as usize;
        let x1 = find(&drawn, "cutmix_x1").unwrap().as_int().unwrap() as usize;
        assert_eq!(mix.lam, (1.0 - (x1 - x0) as f64 / 50.0) as f32);
        for c in 0..3 {
            for t in 0..50 {
                let from = if (x0..x1).contains(&t) { mix.partner_id as usize } else { 2 };
                assert_eq!(x[c * 50 + t], pool.1[from][c * 50 + t]);
            }
        }
    }
}
