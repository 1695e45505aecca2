//! Hinton et al. 2015 knowledge distillation, as mdistiller and torchdistill compute it:
//! `KL(softmax(t/T) ‖ softmax(s/T))` summed over classes, averaged over the batch, times T².
//! (mdistiller `kd_loss`: `F.kl_div(log_softmax(s/T), softmax(t/T), reduction="none").sum(1).mean() * T**2`.)

use tch::{Kind, Tensor};

/// The KD term for a batch of student and teacher logits `[batch, classes]`.
pub fn kd_loss(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor, tch::TchError> {
    let log_p_student = (student / temperature).f_log_softmax(-1, Kind::Float)?;
    let log_p_teacher = (teacher / temperature).f_log_softmax(-1, Kind::Float)?;
    let p_teacher = log_p_teacher.exp();
    let per_sample = (p_teacher * (log_p_teacher - log_p_student)).f_sum_dim_intlist(-1, false, Kind::Float)?;
    Ok(per_sample.mean(Kind::Float) * (temperature * temperature))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(student: &[Vec<f64>], teacher: &[Vec<f64>], t: f64) -> f64 {
        let log_softmax = |z: &[f64]| {
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| ((v - max) / 1.0).exp()).sum::<f64>().ln();
            z.iter().map(|v| v - lse).collect::<Vec<_>>()
        };
        let mut total = 0.0;
        for (s, te) in student.iter().zip(teacher) {
            let ls = log_softmax(&s.iter().map(|v| v / t).collect::<Vec<_>>());
            let lt = log_softmax(&te.iter().map(|v| v / t).collect::<Vec<_>>());
            total += lt.iter().zip(&ls).map(|(a, b)| a.exp() * (a - b)).sum::<f64>();
        }
        total / student.len() as f64 * t * t
    }

    #[test]
    fn matches_a_plain_f64_computation() {
        let student = vec![vec![1.0, -0.5, 2.0], vec![0.1, 0.2, 0.3]];
        let teacher = vec![vec![3.0, 0.0, -1.0], vec![-2.0, 1.0, 0.5]];
        for t in [1.0, 4.0] {
            let s = Tensor::from_slice(&student.concat().iter().map(|&v| v as f32).collect::<Vec<_>>()).view([2, 3]);
            let te = Tensor::from_slice(&teacher.concat().iter().map(|&v| v as f32).collect::<Vec<_>>()).view([2, 3]);
            let got = kd_loss(&s, &te, t).unwrap().double_value(&[]);
            let want = reference(&student, &teacher, t);
            assert!((got - want).abs() < 1e-5, "T={t}: {got} vs {want}");
        }
    }

    #[test]
    fn is_zero_when_student_equals_teacher() {
        let z = Tensor::from_slice(&[0.3f32, -1.0, 2.0, 0.0]).view([2, 2]);
        assert!(kd_loss(&z, &z, 4.0).unwrap().double_value(&[]).abs() < 1e-7);
    }
}
