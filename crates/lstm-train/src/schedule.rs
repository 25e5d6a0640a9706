//! Learning-rate schedules, stepped once per epoch as `torch.optim.lr_scheduler`'s are, in
//! PyTorch's recursive form (each rate computed from the previous one), so that the rates agree
//! with PyTorch's to rounding.

use lstm_core::{LstmError, Result, Scalar};

/// A learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule<F> {
    /// The base rate throughout.
    Constant,
    /// `torch.optim.lr_scheduler.StepLR`: the rate times `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays (at least 1).
        step_size: u64,
        /// Factor of each decay.
        gamma: F,
    },
    /// `torch.optim.lr_scheduler.CosineAnnealingLR`: from the base rate down to `eta_min`
    /// along a half cosine of `t_max` epochs (and back up, periodically, after it).
    Cosine {
        /// Epochs of the half period (at least 1).
        t_max: u64,
        /// The lowest rate.
        eta_min: F,
    },
}

/// A [`Schedule`] in progress: the current rate and epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scheduler<F> {
    schedule: Schedule<F>,
    base: F,
    lr: F,
    epoch: u64,
}

impl<F: Scalar> Scheduler<F> {
    /// The schedule at epoch 0, at the base rate `base`.
    ///
    /// # Errors
    /// [`LstmError::Invalid`] for a negative or non-finite rate, a zero period or a
    /// non-finite factor.
    pub fn new(schedule: Schedule<F>, base: F) -> Result<Self> {
        if !(base.is_finite() && base >= F::zero()) {
            return Err(LstmError::invalid(
                "learning rate",
                format!("must be a non-negative number, got {base}"),
            ));
        }
        match schedule {
            Schedule::Step { step_size: 0, .. } | Schedule::Cosine { t_max: 0, .. } => {
                return Err(LstmError::invalid(
                    "schedule",
                    "the period must be at least 1",
                ));
            }
            Schedule::Step { gamma: v, .. } | Schedule::Cosine { eta_min: v, .. }
                if !v.is_finite() =>
            {
                return Err(LstmError::invalid("schedule", format!("{v} is not finite")));
            }
            _ => {}
        }
        Ok(Self {
            schedule,
            base,
            lr: base,
            epoch: 0,
        })
    }

    /// The current rate.
    pub fn lr(&self) -> F {
        self.lr
    }

    /// The current epoch (0 before the first [`Self::step`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Moves to the next epoch and returns its rate.
    pub fn step(&mut self) -> F {
        self.epoch += 1;
        let e = self.epoch;
        let one = F::one();
        self.lr = match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step { step_size, gamma } => {
                if e.is_multiple_of(step_size) {
                    self.lr * gamma
                } else {
                    self.lr
                }
            }
            Schedule::Cosine { t_max, eta_min } => {
                let pi = F::of(std::f64::consts::PI);
                let (t, tm) = (F::of(e as f64), F::of(t_max as f64));
                let two = one + one;
                if (e - 1).wrapping_sub(t_max) % (2 * t_max) == 0 && e > t_max {
                    self.lr + (self.base - eta_min) * (one - (pi / tm).cos()) / two
                } else {
                    (one + (pi * t / tm).cos()) / (one + (pi * (t - one) / tm).cos())
                        * (self.lr - eta_min)
                        + eta_min
                }
            }
        };
        self.lr
    }
}
