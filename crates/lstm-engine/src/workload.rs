//! The canonical benchmark workloads.

/// A benchmark shape: batch `B`, steps `T`, input `I`, hidden `H`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Name used on the command line and in reports.
    pub name: &'static str,
    /// Batch size `B`.
    pub batch: usize,
    /// Sequence length `T` (1 for the streaming workload, which is measured per step).
    pub steps: usize,
    /// Input width `I`.
    pub input: usize,
    /// Hidden width `H`.
    pub hidden: usize,
}

impl Workload {
    /// One step at a time, batch 1: the streaming case (reported per step).
    pub const STREAM: Workload = Workload {
        name: "stream",
        batch: 1,
        steps: 1,
        input: 64,
        hidden: 128,
    };
    /// A short single sequence (reported per sequence).
    pub const SEQ_SMALL: Workload = Workload {
        name: "seq-small",
        batch: 1,
        steps: 100,
        input: 32,
        hidden: 64,
    };
    /// A mid-size batch (reported per batch).
    pub const BATCH_MID: Workload = Workload {
        name: "batch-mid",
        batch: 32,
        steps: 100,
        input: 128,
        hidden: 256,
    };
    /// A large batch (reported per batch).
    pub const BATCH_LARGE: Workload = Workload {
        name: "batch-large",
        batch: 64,
        steps: 50,
        input: 512,
        hidden: 1024,
    };
    /// Training: one forward and backward pass of a batch (loss = sum of the outputs),
    /// reported per batch.
    pub const TRAIN_MID: Workload = Workload {
        name: "train-mid",
        batch: 32,
        steps: 50,
        input: 64,
        hidden: 128,
    };
    /// The four inference workloads, smallest first.
    pub const ALL: [Workload; 4] = [
        Self::STREAM,
        Self::SEQ_SMALL,
        Self::BATCH_MID,
        Self::BATCH_LARGE,
    ];

    /// The workload of the given name, [`Self::TRAIN_MID`] included.
    pub fn by_name(name: &str) -> Option<Workload> {
        Self::ALL
            .into_iter()
            .chain([Self::TRAIN_MID])
            .find(|w| w.name == name)
    }

    /// Whether the workload times a backward pass too.
    pub fn trains(&self) -> bool {
        self.name == Self::TRAIN_MID.name
    }

    /// Floating-point operations of one run of a standard cell (2 per multiply-add of the two
    /// products; the gate pass is not counted).
    pub fn flops(&self) -> f64 {
        let (b, t, i, h) = (
            self.batch as f64,
            self.steps as f64,
            self.input as f64,
            self.hidden as f64,
        );
        2.0 * b * t * 4.0 * h * (i + h)
    }
}
