//! Criterion benchmarks: every registered variant (and the plain baseline) on the canonical
//! workloads.
//!
//! `stream` measures one step with the state carried (throughput: steps); the others measure one
//! whole sequence batch through `unroll_into` with reused buffers (throughput: batch x steps
//! elements). The plain baseline runs only on the two small workloads. The `*-layers` groups run
//! the layer stack (one bidirectional layer) on 1 and 2 threads. The `threads` group runs the
//! concat cell through `unroll_into_threads` on 1 and 2 threads: batch-large (where two threads
//! split the hidden units) and one long sequence of a larger model (which one thread would run
//! alone). The `train-mid` group times a forward and backward pass of every cell.

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use lstm_benches::variants::{self, Visit};
use lstm_benches::{PLAIN, plain};
use lstm_concat::ConcatCell;
use lstm_core::ndarray::{Array2, Array3};
use lstm_core::{RecurrentCell, SeqOptions, Trace, Variant, Workspace};
use lstm_engine::{init::SplitMix64, threads, workload::Workload};
use lstm_layers::StackOptions;
use std::hint::black_box;

fn bench(c: &mut Criterion, w: Workload) {
    let mut group = c.benchmark_group(w.name);
    group.throughput(Throughput::Elements((w.batch * w.steps) as u64));
    if w.batch * w.hidden >= 32 * 256 {
        group.sample_size(10);
    }
    let mut rng = SplitMix64::new(1);
    struct Each<'a, 'g> {
        group: &'a mut BenchmarkGroup<'g, WallTime>,
        w: Workload,
        rng: &'a mut SplitMix64,
    }
    impl Visit for Each<'_, '_> {
        fn visit<C: Variant<f32> + lstm_core::Backward<f32> + Sync + 'static>(&mut self) {
            if let Ok(cell) = C::seeded(self.w.input, self.w.hidden, 7) {
                bench_cell(self.group, &self.w, C::NAME, &cell, self.rng);
            }
        }
    }
    variants::each(&mut Each {
        group: &mut group,
        w,
        rng: &mut rng,
    });
    if w.batch == 1 {
        bench_cell(&mut group, &w, PLAIN, &plain(&w), &mut rng);
    }
    group.finish();
}

/// One cell on one workload: a step with the state carried (stream) or a whole sequence.
fn bench_cell<C: RecurrentCell<f32>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    w: &Workload,
    name: &str,
    cell: &C,
    rng: &mut SplitMix64,
) {
    let mut ws = Workspace::new();
    if w.name == "stream" {
        let x: Array2<f32> = rng.uniform_array((1, w.input), 1.0);
        let mut gates = Array2::zeros((1, cell.gate_count() * w.hidden));
        let mut state = cell.zero_state(1);
        group.bench_function(BenchmarkId::new("step", name), |b| {
            b.iter(|| cell.step_into(black_box(x.view()), &mut state, gates.view_mut(), &mut ws))
        });
    } else {
        let x: Array3<f32> = rng.uniform_array((w.steps, w.batch, w.input), 1.0);
        let mut out = Array3::zeros((w.steps, w.batch, cell.output_size()));
        let opts = SeqOptions::default();
        group.bench_function(BenchmarkId::new("unroll", name), |b| {
            b.iter(|| {
                let mut st = cell.zero_state(w.batch);
                cell.unroll_into(
                    black_box(x.view()),
                    &mut st,
                    out.view_mut(),
                    &opts,
                    None::<&mut Trace<f32>>,
                    &mut ws,
                )
            })
        });
    }
}

/// The layer stack: one bidirectional layer (twice the work of a cell), on 1 and 2 threads
/// (with 2, the directions run at once).
fn bench_stack(c: &mut Criterion, w: Workload) {
    let mut group = c.benchmark_group(format!("{}-layers", w.name));
    group.throughput(Throughput::Elements((2 * w.batch * w.steps) as u64));
    if w.batch * w.hidden >= 32 * 256 {
        group.sample_size(10);
    }
    let mut rng = SplitMix64::new(2);
    let Ok(stack) = lstm_benches::bidirectional(&w, &mut rng) else {
        return;
    };
    let x: Array3<f32> = rng.uniform_array((w.steps, w.batch, w.input), 1.0);
    for threads in [1, 2] {
        let opts = StackOptions {
            threads,
            ..StackOptions::default()
        };
        group.bench_function(BenchmarkId::new("forward", threads), |b| {
            b.iter(|| stack.forward(black_box(x.view()), None, None, &opts))
        });
    }
    group.finish();
}

/// `unroll_into_threads` on 1 and 2 threads.
fn bench_threads(c: &mut Criterion) {
    let long = Workload {
        name: "long-sequence",
        batch: 1,
        steps: 200,
        input: 256,
        hidden: 512,
    };
    let mut group = c.benchmark_group("threads");
    group.sample_size(10);
    let mut rng = SplitMix64::new(3);
    for w in [Workload::BATCH_MID, Workload::BATCH_LARGE, long] {
        let Ok(cell) = ConcatCell::<f32>::random(w.input, w.hidden, &mut rng) else {
            continue;
        };
        let x: Array3<f32> = rng.uniform_array((w.steps, w.batch, w.input), 1.0);
        let mut out = Array3::zeros((w.steps, w.batch, w.hidden));
        let mut ws = Workspace::new();
        let opts = SeqOptions::default();
        for threads in [1, 2] {
            let id = BenchmarkId::new(w.name, threads);
            group.bench_function(id, |b| {
                b.iter(|| {
                    let mut st = cell.zero_state(w.batch);
                    threads::unroll_into_threads(
                        &cell,
                        black_box(x.view()),
                        &mut st,
                        out.view_mut(),
                        &opts,
                        threads,
                        &mut ws,
                    )
                })
            });
        }
    }
    group.finish();
}

/// Training: one forward and backward pass of every registered cell on train-mid (loss = sum
/// of the outputs), through `lstm_core::backward::backward_params_in` with a kept workspace:
/// like PyTorch's script, without the input's gradient.
fn bench_backward(c: &mut Criterion) {
    let w = Workload::TRAIN_MID;
    let mut group = c.benchmark_group(w.name);
    group.throughput(Throughput::Elements((w.batch * w.steps) as u64));
    group.sample_size(20);
    struct Each<'a, 'g> {
        group: &'a mut BenchmarkGroup<'g, WallTime>,
        w: Workload,
    }
    impl Visit for Each<'_, '_> {
        fn visit<C: Variant<f32> + lstm_core::Backward<f32> + Sync + 'static>(&mut self) {
            let w = self.w;
            let Ok(cell) = C::seeded(w.input, w.hidden, 7) else {
                return;
            };
            let x: Array3<f32> = SplitMix64::new(1).uniform_array((w.steps, w.batch, w.input), 1.0);
            let dy = Array3::<f32>::ones((w.steps, w.batch, cell.output_size()));
            let opts = SeqOptions::default();
            let mut ws = Workspace::new();
            self.group
                .bench_function(BenchmarkId::new("backward", C::NAME), |b| {
                    b.iter(|| {
                        lstm_core::backward::backward_params_in(
                            &cell,
                            black_box(x.view()),
                            None,
                            &opts,
                            dy.view(),
                            None,
                            &mut ws,
                        )
                    })
                });
        }
    }
    variants::each(&mut Each {
        group: &mut group,
        w,
    });
    group.finish();
}

fn workloads(c: &mut Criterion) {
    for w in Workload::ALL {
        bench(c, w);
        bench_stack(c, w);
    }
    bench_threads(c);
    bench_backward(c);
}

criterion_group!(benches, workloads);
criterion_main!(benches);
