//! The optimisers, written out on tensors so that their state can be saved and a training resumed
//! exactly: SGD (momentum, Nesterov, L2 weight decay added to the gradient) and AdamW (decoupled
//! weight decay, bias-corrected moments), with the update rules of `torch.optim.SGD` and
//! `torch.optim.AdamW` (and of libtorch's C++ optimisers, which the tests compare against), and
//! gradient clipping by global L2 norm as `torch.nn.utils.clip_grad_norm_`. The state is named by
//! the variables' names in the `VarStore`, so a checkpoint is a plain safetensors file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use tch::{nn, Tensor};

/// The optimiser and its settings (weight decay and learning rate come with each step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// AdamW (decoupled weight decay), β = (0.9, 0.999), ε = 1e-8.
    Adamw,
    /// SGD with momentum, optionally Nesterov; weight decay added to the gradient (L2).
    Sgd { momentum: f64, nesterov: bool },
}

const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// An optimiser over the trainable variables of a `VarStore`, with its per-variable state.
///
/// The update runs on flat buffers, as `torch.optim`'s multi-tensor (`foreach`) implementations
/// do: the variables that have gradients are gathered, by kind and device, into one buffer each
/// for their values, their gradients and every state slot, and the variables, their gradients and
/// the named state become views of them. An update is then a dozen operations whatever the number
/// of variables (the per-variable loop cost a dozen per variable), with the same arithmetic on
/// every element. AdamW's bias correction counts each variable's own updates, as `torch.optim`
/// does: a variable that had no gradient at the first steps gets a buffer of its own, beside those
/// of the variables updated as many times.
pub struct Stepper {
    kind: Optimizer,
    weight_decay: f64,
    /// Trainable variables by name, in name order.
    variables: Vec<(String, Tensor)>,
    /// Per variable: SGD's momentum buffer, or AdamW's first and second moments (views of the
    /// flat slots once a step has run).
    state: BTreeMap<String, Vec<Tensor>>,
    /// Steps taken.
    steps: u64,
    /// Per variable, the updates it has had (AdamW's bias correction), as of the last time the
    /// flat buffers were made; the buffers count on from there.
    updates: BTreeMap<String, u64>,
    /// The flat buffers, for the variables that had gradients when they were made.
    flat: Vec<Flat>,
}

/// Variables of one kind and device, flattened: their values, gradients and state slots.
struct Flat {
    /// Indices into `Stepper::variables`.
    members: Vec<usize>,
    values: Tensor,
    grads: Tensor,
    slots: Vec<Tensor>,
    /// The updates every member has had.
    updates: u64,
}

impl Stepper {
    /// An optimiser over the trainable variables of the stores (their names must differ).
    pub fn new(stores: &[&nn::VarStore], kind: Optimizer, weight_decay: f64) -> Stepper {
        let mut variables: Vec<(String, Tensor)> =
            stores.iter().flat_map(|vs| vs.variables()).filter(|(_, t)| t.requires_grad()).collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        Stepper {
            kind,
            weight_decay,
            variables,
            state: BTreeMap::new(),
            steps: 0,
            updates: BTreeMap::new(),
            flat: Vec::new(),
        }
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn zero_grad(&mut self) {
        for flat in &mut self.flat {
            let _ = flat.grads.zero_();
        }
        for (index, (_, variable)) in self.variables.iter().enumerate() {
            let mut grad = variable.grad();
            if grad.defined() && !self.flat.iter().any(|flat| flat.members.contains(&index)) {
                let _ = grad.detach_().zero_();
            }
        }
    }

    /// How many state slots each variable has.
    fn slot_count(&self) -> usize {
        match self.kind {
            Optimizer::Adamw => 2,
            Optimizer::Sgd { momentum, .. } if momentum != 0.0 => 1,
            Optimizer::Sgd { .. } => 0,
        }
    }

    /// Makes the flat buffers again if the variables with gradients are not those they hold (the
    /// first step, or a variable that had no gradient before); the values, gradients and state
    /// are copied in, and the variables, gradients and state become views of the buffers.
    fn flatten(&mut self) -> Result<(), tch::TchError> {
        let with_grads: Vec<usize> =
            (0..self.variables.len()).filter(|&i| self.variables[i].1.grad().defined()).collect();
        let mut flattened: Vec<usize> = self.flat.iter().flat_map(|flat| flat.members.iter().copied()).collect();
        flattened.sort_unstable();
        if flattened == with_grads {
            return Ok(());
        }
        self.updates = self.current_updates();
        let mut groups: Vec<((tch::Kind, tch::Device, u64), Vec<usize>)> = Vec::new();
        for &index in &with_grads {
            let (name, variable) = &self.variables[index];
            let key = (variable.kind(), variable.device(), self.updates.get(name).copied().unwrap_or(0));
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(index),
                None => groups.push((key, vec![index])),
            }
        }
        let slots = self.slot_count();
        let mut flat = Vec::with_capacity(groups.len());
        tch::no_grad(|| -> Result<(), tch::TchError> {
            for ((_, _, updates), members) in groups {
                let gather = |part: &dyn Fn(usize) -> Tensor| -> Result<Tensor, tch::TchError> {
                    let parts: Vec<Tensor> = members.iter().map(|&i| part(i).reshape([-1])).collect();
                    Tensor::f_cat(&parts, 0)
                };
                let values = gather(&|i| self.variables[i].1.detach())?;
                let grads = gather(&|i| self.variables[i].1.grad())?;
                let slot_buffers = (0..slots)
                    .map(|slot| {
                        gather(&|i| {
                            let (name, variable) = &self.variables[i];
                            match self.state.get(name).and_then(|state| state.get(slot)) {
                                Some(tensor) => tensor.detach(),
                                None => variable.zeros_like(),
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut offset = 0;
                for &i in &members {
                    let (name, variable) = &self.variables[i];
                    let (numel, shape) = (variable.numel() as i64, variable.size());
                    let view = |buffer: &Tensor| buffer.narrow(0, offset, numel).view(shape.as_slice());
                    variable.shallow_clone().set_data(&view(&values));
                    variable.grad().set_data(&view(&grads));
                    let state: Vec<Tensor> = slot_buffers.iter().map(view).collect();
                    if !state.is_empty() {
                        self.state.insert(name.clone(), state);
                    }
                    offset += numel;
                }
                flat.push(Flat { members, values, grads, slots: slot_buffers, updates });
            }
            Ok(())
        })?;
        self.flat = flat;
        Ok(())
    }

    /// Each variable's update count: the flat buffers' for their members, `updates` for the others.
    fn current_updates(&self) -> BTreeMap<String, u64> {
        let mut updates = self.updates.clone();
        for flat in &self.flat {
            for &index in &flat.members {
                updates.insert(self.variables[index].0.clone(), flat.updates);
            }
        }
        updates
    }

    /// The global L2 norm of the gradients (0 when there are none), the norm of the flat
    /// gradients.
    pub fn gradient_norm(&mut self) -> Result<f64, tch::TchError> {
        self.flatten()?;
        let norms: Vec<Tensor> = self.flat.iter().map(|flat| flat.grads.norm()).collect();
        if norms.is_empty() {
            return Ok(0.0);
        }
        Ok(Tensor::stack(&norms, 0).norm().double_value(&[]))
    }

    /// Scales the gradients so that their global L2 norm is at most `max` (by `max / (norm + 1e-6)`
    /// when the norm exceeds it), as `clip_grad_norm_` (the norm of the per-variable norms, as it
    /// computes it); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max: f64) -> Result<f64, tch::TchError> {
        self.flatten()?;
        let norms: Vec<Tensor> =
            self.variables.iter().map(|(_, v)| v.grad()).filter(|g| g.defined()).map(|g| g.norm()).collect();
        if norms.is_empty() {
            return Ok(0.0);
        }
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coefficient = max / (total + 1e-6);
        if coefficient < 1.0 {
            for flat in &mut self.flat {
                let _ = flat.grads.f_mul_scalar_(coefficient)?;
            }
        }
        Ok(total)
    }

    /// One update with learning rate `lr` from the variables' current gradients (variables
    /// without a gradient are left as they are, as `torch.optim` leaves them).
    pub fn step(&mut self, lr: f64) -> Result<(), tch::TchError> {
        self.flatten()?;
        self.steps += 1;
        let (kind, weight_decay) = (self.kind, self.weight_decay);
        tch::no_grad(|| -> Result<(), tch::TchError> {
            for flat in &mut self.flat {
                flat.updates += 1;
                let step = flat.updates as f64;
                let (variable, grad) = (&mut flat.values, &flat.grads);
                match kind {
                    Optimizer::Sgd { momentum, nesterov } => {
                        let mut direction =
                            if weight_decay != 0.0 { grad + &*variable * weight_decay } else { grad.copy() };
                        if momentum != 0.0 {
                            // A new buffer is zeros, so its first update is torch.optim.SGD's start
                            // at the first direction.
                            let buffer = &mut flat.slots[0];
                            let _ = buffer.f_mul_scalar_(momentum)?.f_add_(&direction)?;
                            direction = if nesterov { direction + &*buffer * momentum } else { buffer.copy() };
                        }
                        let _ = variable.f_sub_(&(direction * lr))?;
                    }
                    Optimizer::Adamw => {
                        if weight_decay != 0.0 {
                            let _ = variable.f_mul_scalar_(1.0 - lr * weight_decay)?;
                        }
                        let _ = flat.slots[0].f_mul_scalar_(ADAM_BETA1)?.f_add_(&(grad * (1.0 - ADAM_BETA1)))?;
                        let _ = flat.slots[1].f_mul_scalar_(ADAM_BETA2)?.f_add_(&(grad * grad * (1.0 - ADAM_BETA2)))?;
                        let correction1 = 1.0 - ADAM_BETA1.powf(step);
                        let correction2 = 1.0 - ADAM_BETA2.powf(step);
                        let denominator = flat.slots[1].sqrt() / correction2.sqrt() + ADAM_EPS;
                        let _ = variable.f_sub_(&(&flat.slots[0] / denominator * (lr / correction1)))?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Writes the state, the step count and each variable's update count (`NAME#updates`) as a
    /// safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), tch::TchError> {
        let mut named: Vec<(String, Tensor)> = vec![("steps".into(), Tensor::from_slice(&[self.steps as i64]))];
        for (name, tensors) in &self.state {
            for (slot, tensor) in tensors.iter().enumerate() {
                named.push((format!("{name}#{slot}"), tensor.shallow_clone()));
            }
        }
        for (name, count) in self.current_updates() {
            named.push((format!("{name}#updates"), Tensor::from_slice(&[count as i64])));
        }
        Tensor::write_safetensors(&named, path)
    }

    /// Restores the state written by [`Stepper::save`]; every variable's state must fit its shape.
    /// A state without update counts (written before they were kept) counts the run's steps for
    /// every variable with state.
    pub fn load(&mut self, path: &Path) -> Result<(), tch::TchError> {
        let mut state: BTreeMap<String, Vec<(usize, Tensor)>> = BTreeMap::new();
        let mut updates = BTreeMap::new();
        for (key, tensor) in Tensor::read_safetensors(path)? {
            if key == "steps" {
                self.steps = tensor.int64_value(&[0]) as u64;
                continue;
            }
            if let Some(name) = key.strip_suffix("#updates") {
                updates.insert(name.to_string(), tensor.int64_value(&[0]) as u64);
                continue;
            }
            let (name, slot) = key
                .rsplit_once('#')
                .and_then(|(name, slot)| Some((name.to_string(), slot.parse::<usize>().ok()?)))
                .ok_or_else(|| tch::TchError::Convert(format!("{}: unexpected entry {key}", path.display())))?;
            let variable = self.variables.iter().find(|(n, _)| *n == name).map(|(_, v)| v).ok_or_else(|| {
                tch::TchError::Convert(format!("{}: state for {name}, which the model does not have", path.display()))
            })?;
            if tensor.size() != variable.size() {
                return Err(tch::TchError::Shape(format!(
                    "{}: state of {name} has shape {:?}, the variable {:?}",
                    path.display(),
                    tensor.size(),
                    variable.size()
                )));
            }
            state.entry(name).or_default().push((slot, tensor.to_device(variable.device())));
        }
        // The loaded state replaces the flat buffers' (made again at the next step).
        self.flat.clear();
        for name in state.keys() {
            updates.entry(name.clone()).or_insert(self.steps);
        }
        self.updates = updates;
        self.state = state
            .into_iter()
            .map(|(name, mut slots)| {
                slots.sort_by_key(|(slot, _)| *slot);
                (name, slots.into_iter().map(|(_, t)| t).collect())
            })
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{Module, OptimizerConfig};
    use tch::Kind;

    /// A small linear model with fixed weights.
    fn model(vs: &nn::VarStore) -> nn::Linear {
        let linear = nn::linear(vs.root() / "fc", 3, 2, Default::default());
        tch::no_grad(|| {
            linear.ws.shallow_clone().copy_(&Tensor::from_slice(&[0.5f32, -0.2, 0.1, 0.3, 0.8, -0.6]).view([2, 3]));
            linear.bs.as_ref().unwrap().shallow_clone().copy_(&Tensor::from_slice(&[0.05f32, -0.1]));
        });
        linear
    }

    fn loss(linear: &nn::Linear, step: usize) -> Tensor {
        let x = Tensor::from_slice(&[1.0f32, 2.0, -1.0, 0.5, -0.3, 0.7]).view([2, 3]) * (1.0 + step as f64 * 0.1);
        linear.forward(&x).pow_tensor_scalar(2).sum(Kind::Float)
    }

    fn weights(vs: &nn::VarStore) -> Vec<f32> {
        let mut all = vs.variables().into_iter().collect::<Vec<_>>();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.iter().flat_map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect()
    }

    /// Our optimiser against libtorch's, step for step.
    fn compare(ours: Optimizer, theirs: impl OptimizerConfig, lr: f64, wd: f64) {
        let (vs_a, vs_b) = (nn::VarStore::new(tch::Device::Cpu), nn::VarStore::new(tch::Device::Cpu));
        let (a, b) = (model(&vs_a), model(&vs_b));
        let mut stepper = Stepper::new(&[&vs_a], ours, wd);
        let mut reference = theirs.build(&vs_b, lr).unwrap();
        for step in 0..6 {
            stepper.zero_grad();
            loss(&a, step).backward();
            stepper.step(lr).unwrap();
            reference.backward_step(&loss(&b, step));
        }
        for (x, y) in weights(&vs_a).iter().zip(weights(&vs_b)) {
            assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{ours:?}: {x} vs {y}");
        }
    }

    #[test]
    fn sgd_and_adamw_follow_libtorch() {
        compare(
            Optimizer::Sgd { momentum: 0.9, nesterov: false },
            nn::Sgd { momentum: 0.9, wd: 0.01, ..Default::default() },
            0.01,
            0.01,
        );
        compare(
            Optimizer::Sgd { momentum: 0.9, nesterov: true },
            nn::Sgd { momentum: 0.9, wd: 0.05, nesterov: true, ..Default::default() },
            0.02,
            0.05,
        );
        compare(Optimizer::Sgd { momentum: 0.0, nesterov: false }, nn::Sgd::default(), 0.03, 0.0);
        compare(Optimizer::Adamw, nn::AdamW { wd: 0.1, ..Default::default() }, 0.05, 0.1);
    }

    #[test]
    fn a_variable_without_a_gradient_is_left_alone_until_it_has_one() {
        // Two layers; the second enters the loss only from the third step on, so the flat buffers
        // are made again then, with its fresh state (and its own update count) beside the first
        // layer's; a save and load in between keeps both counts.
        let dir = tempfile::tempdir().unwrap();
        for (ours, lr) in [(Optimizer::Adamw, 0.05), (Optimizer::Sgd { momentum: 0.9, nesterov: true }, 0.02)] {
            let (vs_a, vs_b) = (nn::VarStore::new(tch::Device::Cpu), nn::VarStore::new(tch::Device::Cpu));
            let (a, b) = (
                (model(&vs_a), nn::linear(vs_a.root() / "late", 2, 1, Default::default())),
                (model(&vs_b), nn::linear(vs_b.root() / "late", 2, 1, Default::default())),
            );
            tch::no_grad(|| b.1.ws.shallow_clone().copy_(&a.1.ws));
            tch::no_grad(|| b.1.bs.as_ref().unwrap().shallow_clone().copy_(a.1.bs.as_ref().unwrap()));
            let late_before = Vec::<f32>::try_from(a.1.ws.flatten(0, -1)).unwrap();
            let mut stepper = Stepper::new(&[&vs_a], ours, 0.01);
            let mut reference: nn::Optimizer = match ours {
                Optimizer::Adamw => nn::AdamW { wd: 0.01, ..Default::default() }.build(&vs_b, lr).unwrap(),
                _ => {
                    nn::Sgd { momentum: 0.9, wd: 0.01, nesterov: true, ..Default::default() }.build(&vs_b, lr).unwrap()
                }
            };
            let objective = |(first, late): &(nn::Linear, nn::Linear), step: usize| match step {
                0..=1 => loss(first, step),
                _ => {
                    loss(first, step) + late.forward(&Tensor::from_slice(&[0.3f32, -0.7]).view([1, 2])).sum(Kind::Float)
                }
            };
            for step in 0..5 {
                stepper.zero_grad();
                objective(&a, step).backward();
                stepper.step(lr).unwrap();
                reference.backward_step(&objective(&b, step));
                if step == 3 {
                    // Saved and resumed with the late layer's own count (one update behind).
                    let path = dir.path().join("late.safetensors");
                    stepper.save(&path).unwrap();
                    stepper = Stepper::new(&[&vs_a], ours, 0.01);
                    stepper.load(&path).unwrap();
                }
                if step == 1 {
                    assert_eq!(
                        Vec::<f32>::try_from(a.1.ws.flatten(0, -1)).unwrap(),
                        late_before,
                        "untouched without a gradient"
                    );
                }
            }
            for (x, y) in weights(&vs_a).iter().zip(weights(&vs_b)) {
                assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{ours:?}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn clipping_scales_the_global_norm_down_to_the_limit() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let linear = model(&vs);
        let mut stepper = Stepper::new(&[&vs], Optimizer::Adamw, 0.0);
        loss(&linear, 0).backward();
        let before = stepper.clip_grad_norm(0.5).unwrap();
        let after = stepper.clip_grad_norm(1e9).unwrap();
        assert!(before > 0.5, "{before}");
        assert!((after - 0.5 * before / (before + 1e-6)).abs() < 1e-5, "{after}");
    }

    #[test]
    fn saved_state_resumes_the_same_trajectory() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [Optimizer::Adamw, Optimizer::Sgd { momentum: 0.9, nesterov: true }] {
            let (vs_a, vs_b) = (nn::VarStore::new(tch::Device::Cpu), nn::VarStore::new(tch::Device::Cpu));
            let (a, b) = (model(&vs_a), model(&vs_b));
            let mut straight = Stepper::new(&[&vs_a], kind, 0.01);
            let mut resumed = Stepper::new(&[&vs_b], kind, 0.01);
            for step in 0..3 {
                for (stepper, linear) in [(&mut straight, &a), (&mut resumed, &b)] {
                    stepper.zero_grad();
                    loss(linear, step).backward();
                    stepper.step(0.05).unwrap();
                }
            }
            let path = dir.path().join("state.safetensors");
            resumed.save(&path).unwrap();
            let mut resumed = Stepper::new(&[&vs_b], kind, 0.01);
            resumed.load(&path).unwrap();
            assert_eq!(resumed.steps(), 3);
            for step in 3..6 {
                for (stepper, linear) in [(&mut straight, &a), (&mut resumed, &b)] {
                    stepper.zero_grad();
                    loss(linear, step).backward();
                    stepper.step(0.05).unwrap();
                }
            }
            assert_eq!(weights(&vs_a), weights(&vs_b), "{kind:?}: bit for bit");
        }
    }
}
