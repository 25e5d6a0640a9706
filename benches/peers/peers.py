"""Times ONNX Runtime and PyTorch on the canonical workloads of docs/benchmarks.md, with the
same protocol as `lstm bench` (random weights, warm-up, median), printing the same JSON lines.

    python benches/peers/peers.py [--threads N] [--workload NAME] [--peer ort|torch]

Needs numpy, onnx, onnxruntime and torch (not needed by the Rust build or tests).
"""
import argparse
import json
import time

import numpy as np

WORKLOADS = {
    "stream": (1, 1, 64, 128),
    "seq-small": (1, 100, 32, 64),
    "batch-mid": (32, 100, 128, 256),
    "batch-large": (64, 50, 512, 1024),
}
REPS = {"stream": 2000, "seq-small": 301, "batch-mid": 21, "batch-large": 7}


def median_time(f, warm, reps):
    for _ in range(warm):
        f()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def ort_session(b, i, h, threads):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (1, 4 * h, i)).astype(np.float32)
    r = rng.normal(0, 0.1, (1, 4 * h, h)).astype(np.float32)
    bias = np.zeros((1, 8 * h), np.float32)
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "H0", "C0"], ["Y", "Y_h", "Y_c"], hidden_size=h)
    graph = helper.make_graph(
        [node],
        "lstm",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", b, i]),
            helper.make_tensor_value_info("H0", TensorProto.FLOAT, [1, b, h]),
            helper.make_tensor_value_info("C0", TensorProto.FLOAT, [1, b, h]),
        ],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, None),
        ],
        [onnx.numpy_helper.from_array(a, n) for a, n in [(w, "W"), (r, "R"), (bias, "B")]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_ort(name, threads):
    b, t, i, h = WORKLOADS[name]
    sess = ort_session(b, i, h, threads)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (t, b, i)).astype(np.float32)
    state = {"h": np.zeros((1, b, h), np.float32), "c": np.zeros((1, b, h), np.float32)}

    def step():
        _, hn, cn = sess.run(None, {"X": x, "H0": state["h"], "C0": state["c"]})
        state["h"], state["c"] = hn, cn

    if name == "stream":
        return median_time(step, 200, REPS[name])
    return median_time(step, 2, REPS[name])


def run_torch(name, threads):
    import torch

    torch.set_num_threads(threads)
    b, t, i, h = WORKLOADS[name]
    lstm = torch.nn.LSTM(i, h)
    x = torch.randn(t, b, i)
    hc = [(torch.zeros(1, b, h), torch.zeros(1, b, h))]

    def f():
        with torch.inference_mode():
            _, hc[0] = lstm(x, hc[0])

    return median_time(f, 200 if name == "stream" else 2, REPS[name])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workload", choices=list(WORKLOADS))
    p.add_argument("--peer", choices=["ort", "torch"], default="ort")
    a = p.parse_args()
    for name in [a.workload] if a.workload else WORKLOADS:
        secs = (run_ort if a.peer == "ort" else run_torch)(name, a.threads)
        b, t, i, h = WORKLOADS[name]
        value, unit = {
            "stream": (secs * 1e9, "ns/step"),
            "seq-small": (secs * 1e6, "us/seq"),
        }.get(name, (secs * 1e3, "ms/batch"))
        flops = 2.0 * b * t * 4 * h * (i + h)
        print(json.dumps({"workload": name, "variant": a.peer, "threads": a.threads,
                          "value": round(value, 3), "unit": unit, "gflops": round(flops / secs / 1e9, 3)}))


if __name__ == "__main__":
    main()
