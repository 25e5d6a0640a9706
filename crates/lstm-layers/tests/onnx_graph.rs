//! The ONNX graph runner on graphs built here: constant subgraphs, declared shapes and named
//! sizes, roles of inputs and outputs, and every way a graph can be wrong.
#![allow(clippy::unwrap_used)] // test code: a panic is a failure report

use lstm_core::LstmError;
use lstm_core::ndarray::{ArrayD, IxDyn};
use lstm_layers::onnx::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use lstm_layers::onnx::{InputRole, OnnxGraph, OutputRole, Value};
use prost::Message;

const I: usize = 2;
const H: usize = 3;

fn floats(name: &str, dims: &[i64], seed: u64) -> TensorProto {
    let n: i64 = dims.iter().product();
    let mut rng = lstm_engine::init::SplitMix64::new(seed);
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: 7,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn with_int(mut n: NodeProto, name: &str, v: i64) -> NodeProto {
    n.attribute.push(AttributeProto {
        name: name.into(),
        i: v,
        r#type: 2,
        ..Default::default()
    });
    n
}

/// A float32 value declared with these dimensions (a number, or a name); no dimensions: no
/// shape declared.
fn value(name: &str, dims: &[&str]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: (!dims.is_empty()).then(|| TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| match d.parse::<i64>() {
                            Ok(n) => Dimension {
                                dim_value: Some(n),
                                dim_param: None,
                            },
                            Err(_) => Dimension {
                                dim_value: None,
                                dim_param: Some(d.to_string()),
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

fn model(
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    opset: i64,
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        producer_name: String::new(),
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            initializer: init,
            input: inputs,
            output: outputs,
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
    }
    .encode_to_vec()
}

fn weights() -> Vec<TensorProto> {
    vec![
        floats("W", &[1, 4 * H as i64, I as i64], 1),
        floats("R", &[1, 4 * H as i64, H as i64], 2),
    ]
}

fn x(t: usize, b: usize) -> Value<f32> {
    let mut rng = lstm_engine::init::SplitMix64::new(9);
    Value::Float(rng.uniform_array(IxDyn(&[t, b, I]), 1.0))
}

fn run(bytes: &[u8], feeds: Vec<(&str, Value<f32>)>) -> lstm_core::Result<Vec<Value<f32>>> {
    OnnxGraph::<f32>::from_bytes(bytes, "test.onnx")?
        .run(feeds.into_iter().map(|(n, v)| (n.to_string(), v)).collect())
}

fn plain() -> Vec<u8> {
    model(
        vec![with_int(
            node("LSTM", "lstm", &["x", "W", "R"], &["y", "hn", "cn"]),
            "hidden_size",
            H as i64,
        )],
        weights(),
        vec![value("x", &["T", "B", "2"])],
        vec![
            value("y", &["T", "1", "B", "3"]),
            value("hn", &[]),
            value("cn", &[]),
        ],
        14,
    )
}

/// Weights computed by a constant subgraph (Unsqueeze of a 2-D initializer, as exporters emit)
/// are folded at load and give the same result as the initializer itself.
#[test]
fn constant_subgraphs_are_folded() {
    let want = run(&plain(), vec![("x", x(4, 2))]).unwrap();
    let mut init = weights();
    let w = init.remove(0);
    let w2 = TensorProto {
        name: "W2".into(),
        dims: w.dims[1..].to_vec(),
        ..w
    };
    let bytes = model(
        vec![
            node("Unsqueeze", "u", &["W2", "axes"], &["W"]),
            with_int(
                node("LSTM", "lstm", &["x", "W", "R"], &["y", "hn", "cn"]),
                "hidden_size",
                H as i64,
            ),
        ],
        vec![w2, init.remove(0), ints("axes", &[0])],
        vec![value("x", &["T", "B", "2"])],
        vec![value("y", &[]), value("hn", &[]), value("cn", &[])],
        14,
    );
    assert_eq!(run(&bytes, vec![("x", x(4, 2))]).unwrap(), want);
}

#[test]
fn declared_shapes_and_named_sizes_are_checked() {
    let ok = run(&plain(), vec![("x", x(4, 2))]).unwrap();
    assert_eq!(ok[0].shape(), &[4, 1, 2, 3]);
    let err = run(
        &plain(),
        vec![("x", Value::Float(ArrayD::zeros(IxDyn(&[4, 2, 5]))))],
    );
    assert!(matches!(err, Err(LstmError::Shape { .. })), "{err:?}");
    // B names the same size in both inputs.
    let bytes = model(
        vec![with_int(
            node("LSTM", "lstm", &["x", "W", "R", "", "", "h0"], &["y"]),
            "hidden_size",
            H as i64,
        )],
        weights(),
        vec![value("x", &["T", "B", "2"]), value("h0", &["1", "B", "3"])],
        vec![value("y", &[])],
        14,
    );
    let h0 = |b: usize| Value::Float(ArrayD::zeros(IxDyn(&[1, b, H])));
    assert!(run(&bytes, vec![("x", x(4, 2)), ("h0", h0(2))]).is_ok());
    let err = run(&bytes, vec![("x", x(4, 2)), ("h0", h0(3))]).unwrap_err();
    assert!(err.to_string().contains("B = 2"), "{err}");
    // A feed missing, unknown or of the wrong kind.
    let err = run(&bytes, vec![("x", x(4, 2))]).unwrap_err();
    assert!(
        matches!(&err, LstmError::Invalid { what, .. } if what.contains("\"h0\"")),
        "{err}"
    );
    let err = run(&bytes, vec![("x", x(4, 2)), ("h0", h0(2)), ("z", h0(2))]).unwrap_err();
    assert!(matches!(err, LstmError::Invalid { .. }), "{err}");
    let ints = Value::Int(ArrayD::zeros(IxDyn(&[1, 2, H])));
    let err = run(&bytes, vec![("x", x(4, 2)), ("h0", ints)]).unwrap_err();
    assert!(err.to_string().contains("integers"), "{err}");
    // A declared output shape the graph does not compute.
    let bytes = model(
        vec![with_int(
            node("LSTM", "lstm", &["x", "W", "R"], &["y"]),
            "hidden_size",
            H as i64,
        )],
        weights(),
        vec![value("x", &[])],
        vec![value("y", &["9", "9", "9", "9"])],
        14,
    );
    let err = run(&bytes, vec![("x", x(4, 2))]).unwrap_err();
    assert!(
        matches!(&err, LstmError::Shape { what, .. } if what.contains("graph output")),
        "{err}"
    );
}

/// A graph with a Transpose before the LSTM, a Slice of its initial state, a Squeeze of its
/// output, both final states concatenated, and the input's Shape: `W` as given.
fn around_the_lstm(w: TensorProto) -> Vec<u8> {
    let h0 = value("h0", &[]);
    let mut shape = value("shape", &["3"]);
    if let Some(t) = shape.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()) {
        t.elem_type = 7; // INT64
    }
    model(
        vec![
            {
                let mut t = node("Transpose", "t", &["xb"], &["x"]);
                t.attribute.push(AttributeProto {
                    name: "perm".into(),
                    ints: vec![1, 0, 2],
                    r#type: 7,
                    ..Default::default()
                });
                t
            },
            node("Slice", "s", &["h0", "zero", "one", "zero"], &["h0l"]),
            with_int(
                node(
                    "LSTM",
                    "lstm",
                    &["x", "W", "R", "", "", "h0l"],
                    &["y", "hn", "cn"],
                ),
                "hidden_size",
                H as i64,
            ),
            node("Squeeze", "q", &["y", "one"], &["ys"]),
            with_int(node("Concat", "c", &["hn", "cn"], &["both"]), "axis", 0),
            node("Shape", "sh", &["xb"], &["shape"]),
        ],
        vec![
            w,
            weights().remove(1),
            ints("zero", &[0]),
            ints("one", &[1]),
        ],
        vec![value("xb", &[]), h0],
        vec![
            value("ys", &[]),
            value("hn", &[]),
            value("both", &[]),
            shape,
        ],
        14,
    )
}

#[test]
fn roles_follow_values_through_the_tensor_operators() {
    let bytes = around_the_lstm(weights().remove(0));
    let g = OnnxGraph::<f32>::from_bytes(&bytes, "t").unwrap();
    assert_eq!(g.input_role("xb"), Some(InputRole::Sequence));
    assert_eq!(g.input_role("h0"), Some(InputRole::InitialH));
    assert_eq!(g.output_role("ys"), Some(OutputRole::Sequence));
    assert_eq!(g.output_role("hn"), Some(OutputRole::FinalH));
    assert_eq!(g.output_role("both"), None, "two roles");
    assert_eq!(
        g.output_role("shape"),
        None,
        "a shape is no recurrent output"
    );
    let out = g
        .run(vec![
            ("xb".into(), x(2, 4)),
            ("h0".into(), Value::Float(ArrayD::zeros(IxDyn(&[2, 2, H])))),
        ])
        .unwrap();
    assert_eq!(out[0].shape(), &[4, 2, 3]);
    assert_eq!(out[2].shape(), &[2, 2, 3]);
    assert_eq!(
        out[3],
        Value::Int(ArrayD::from_shape_vec(IxDyn(&[3]), vec![2, 4, 2]).unwrap())
    );
}

#[test]
fn bad_graphs_are_errors_that_name_the_problem() {
    let lstm = || {
        with_int(
            node("LSTM", "lstm", &["x", "W", "R"], &["y"]),
            "hidden_size",
            H as i64,
        )
    };
    let io = || (vec![value("x", &[])], vec![value("y", &[])]);
    // A value nothing gives.
    let (i, o) = io();
    let bytes = model(
        vec![node("Identity", "id", &["ghost"], &["x2"]), lstm()],
        weights(),
        i,
        o,
        14,
    );
    let err = run(&bytes, vec![("x", x(2, 1))]).unwrap_err();
    assert!(err.to_string().contains("\"ghost\""), "{err}");
    // An opset before the recurrent operators.
    let (i, o) = io();
    let err =
        OnnxGraph::<f32>::from_bytes(&model(vec![lstm()], weights(), i, o, 6), "t").unwrap_err();
    assert!(matches!(err, LstmError::Unsupported(_)), "{err}");
    // An operator it does not execute, and one with an attribute it does not know.
    let (i, o) = io();
    let bytes = model(
        vec![node("Relu", "act", &["x"], &["x2"]), lstm()],
        weights(),
        i,
        o,
        14,
    );
    let g = OnnxGraph::<f32>::from_bytes(&bytes, "t").unwrap();
    assert_eq!(g.unsupported(), vec![("act", "Relu")]);
    let err = g.run(vec![("x".into(), x(2, 1))]).unwrap_err();
    assert!(
        matches!(&err, LstmError::Unsupported(m) if m.contains("Relu (node \"act\")")),
        "{err}"
    );
    let (i, o) = io();
    let bytes = model(
        vec![
            with_int(node("Transpose", "t", &["x"], &["x2"]), "bogus", 1),
            lstm(),
        ],
        weights(),
        i,
        o,
        14,
    );
    let err = OnnxGraph::<f32>::from_bytes(&bytes, "t").unwrap_err();
    assert!(err.to_string().contains("\"bogus\""), "{err}");
    // A constant subgraph that fails names its node.
    let (i, o) = io();
    let bytes = model(
        vec![node("Reshape", "r", &["W", "bad"], &["W3"]), lstm()],
        [weights(), vec![ints("bad", &[5, -1])]].concat(),
        i,
        o,
        14,
    );
    let err = OnnxGraph::<f32>::from_bytes(&bytes, "t").unwrap_err();
    assert!(err.to_string().contains("Reshape node \"r\""), "{err}");
}

/// Sizes from a file are checked with arithmetic that cannot overflow, so the message shows the
/// sizes the file holds.
#[test]
fn huge_sizes_are_reported_as_they_are() {
    let (i, o) = (vec![value("x", &[])], vec![value("y", &[])]);
    let huge = TensorProto {
        name: "W".into(),
        dims: vec![1 << 32, 1 << 32, 3],
        data_type: 1,
        ..Default::default()
    };
    let lstm = node("LSTM", "lstm", &["x", "W", "R"], &["y"]);
    let bytes = model(
        vec![lstm.clone()],
        vec![huge, weights().remove(1)],
        i.clone(),
        o.clone(),
        14,
    );
    let err = OnnxGraph::<f32>::from_bytes(&bytes, "t").unwrap_err();
    assert!(
        err.to_string()
            .contains("more elements than memory can hold"),
        "{err}"
    );
    let big = with_int(lstm, "hidden_size", 1 << 62);
    let err =
        OnnxGraph::<f32>::from_bytes(&model(vec![big], weights(), i, o, 14), "t").unwrap_err();
    assert!(err.to_string().contains("4 * 4611686018427387904"), "{err}");
    assert!(err.to_string().contains("[1, 12, 2]"), "{err}");
}

/// The gradient through a whole graph (tensor operators on both sides of the LSTM, one output
/// read twice by a Concat) against central differences of `run` in f64, for every input
/// element and some weights; and the errors of a gradient that fits no output.
#[test]
fn graph_gradients_match_finite_differences() {
    // The graph's float inputs and outputs declared float64.
    let f64_graph = |w: TensorProto| {
        let mut m = ModelProto::decode(around_the_lstm(w).as_slice()).unwrap();
        let g = m.graph.as_mut().unwrap();
        for v in g.input.iter_mut().chain(g.output.iter_mut()) {
            if let Some(t) = v.r#type.as_mut().and_then(|t| t.tensor_type.as_mut())
                && t.elem_type == 1
            {
                t.elem_type = 11;
            }
        }
        OnnxGraph::<f64>::from_bytes(&m.encode_to_vec(), "t").unwrap()
    };
    let w = weights().remove(0);
    let g = f64_graph(w.clone());
    let mut rng = lstm_engine::init::SplitMix64::new(5);
    let xb: ArrayD<f64> = rng.uniform_array(IxDyn(&[2, 3, I]), 1.0);
    let h0: ArrayD<f64> = rng.uniform_array(IxDyn(&[2, 2, H]), 1.0);
    let feeds = |xb: &ArrayD<f64>, h0: &ArrayD<f64>| {
        vec![
            ("xb".to_string(), Value::Float(xb.clone())),
            ("h0".to_string(), Value::Float(h0.clone())),
        ]
    };
    let out = g.run(feeds(&xb, &h0)).unwrap();
    let d: Vec<(String, ArrayD<f64>)> = ["ys", "hn", "both"]
        .iter()
        .zip(&out)
        .map(|(n, v)| (n.to_string(), rng.uniform_array(IxDyn(v.shape()), 1.0)))
        .collect();
    let loss = |g: &OnnxGraph<f64>, xb: &ArrayD<f64>, h0: &ArrayD<f64>| -> f64 {
        let out = g.run(feeds(xb, h0)).unwrap();
        out.iter()
            .zip(&d)
            .map(|(v, (_, d))| match v {
                Value::Float(a) => (a * d).sum(),
                Value::Int(_) => unreachable!(),
            })
            .sum()
    };
    let grads = g.backward(feeds(&xb, &h0), &d).unwrap();
    assert_eq!(grads.outputs, out);
    let names: Vec<&str> = grads.inputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["xb", "h0"]);
    let eps = 1e-6;
    let check = |got: f64, plus: f64, minus: f64, what: &str| {
        let want = (plus - minus) / (2.0 * eps);
        assert!(
            (got - want).abs() < 1e-7 * want.abs().max(1.0),
            "{what}: {got} against {want}"
        );
    };
    for j in 0..xb.len() {
        let (mut p, mut m) = (xb.clone(), xb.clone());
        p.as_slice_mut().unwrap()[j] += eps;
        m.as_slice_mut().unwrap()[j] -= eps;
        let got = grads.inputs[0].1.as_slice().unwrap()[j];
        check(
            got,
            loss(&g, &p, &h0),
            loss(&g, &m, &h0),
            &format!("xb[{j}]"),
        );
    }
    // Only the first layer's slice of h0 reaches the LSTM: the rest gets zero.
    for j in 0..h0.len() {
        let (mut p, mut m) = (h0.clone(), h0.clone());
        p.as_slice_mut().unwrap()[j] += eps;
        m.as_slice_mut().unwrap()[j] -= eps;
        let got = grads.inputs[1].1.as_slice().unwrap()[j];
        check(
            got,
            loss(&g, &xb, &p),
            loss(&g, &xb, &m),
            &format!("h0[{j}]"),
        );
    }
    let (name, dw) = &grads.params[0];
    assert_eq!(name, "W");
    assert_eq!(
        grads
            .params
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["W", "R"]
    );
    for j in [0, 5, 13, 23] {
        let moved = |by: f32| {
            let mut w = w.clone();
            w.float_data[j] += by;
            f64_graph(w)
        };
        // The weights are stored as f32: step by what f32 can hold.
        let step = 1e-3f32;
        let got = dw.as_slice().unwrap()[j];
        let want = (loss(&moved(step), &xb, &h0) - loss(&moved(-step), &xb, &h0))
            / (2.0 * f64::from(w.float_data[j] + step) - 2.0 * f64::from(w.float_data[j]));
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "W[{j}]: {got} against {want}"
        );
    }
    // Gradients that fit no output.
    let shape = g.outputs()[3].name.clone();
    let bad = |name: &str, a: ArrayD<f64>| g.backward(feeds(&xb, &h0), &[(name.to_string(), a)]);
    assert!(matches!(
        bad(&shape, ArrayD::zeros(IxDyn(&[3]))),
        Err(LstmError::Invalid { .. })
    ));
    assert!(matches!(
        bad("nope", ArrayD::zeros(IxDyn(&[3]))),
        Err(LstmError::Invalid { .. })
    ));
    assert!(matches!(
        bad("ys", ArrayD::zeros(IxDyn(&[3]))),
        Err(LstmError::Shape { .. })
    ));
}
