"""PyTorch's forward and backward of single ops, for test/ops-torch.test.ts.

stdin: a JSON list of cases {op, attrs, inputs: [{shape, data}], u: {shape, data}} (u: the output's cotangent).
stdout: one JSON list of {y: [...], shape: [...], grads: [[...] per input]}, computed in float64 so that the
reference itself adds no float32 rounding. Each op is spelled the way an exported PyTorch model computes it.
"""
import json
import sys

import torch
import torch.nn.functional as F


def run(op, a, xs):
    if op == "maxPool":
        return F.max_pool2d(xs[0], a["k"], a["s"], a["p"], dilation=a.get("d", 1), ceil_mode=a["ceil"])
    if op == "averagePool":
        return F.avg_pool2d(xs[0], a["k"], a["s"], a["p"], ceil_mode=a["ceil"], count_include_pad=a["includePad"])
    if op == "conv":
        return F.conv2d(xs[0], xs[1], xs[2] if len(xs) > 2 else None, a["s"], a["p"], a.get("d", 1), a.get("group", 1))
    if op == "prelu":
        return F.prelu(xs[0], xs[1].reshape(-1))
    if op == "elu":
        return F.elu(xs[0], a["alpha"])
    if op == "clip":
        return torch.clamp(xs[0], a.get("min"), a.get("max"))
    if op == "hardSigmoid":
        return F.hardsigmoid(xs[0])
    if op == "hardSwish":
        return F.hardswish(xs[0])
    if op == "gemm":
        return a["alpha"] * (xs[0] @ xs[1].T) + a["beta"] * xs[2]
    if op == "batchNorm1d":
        return F.batch_norm(xs[0], None, None, xs[1], xs[2], training=True, eps=1e-5)
    if op == "softmax":
        return F.softmax(xs[0], a["axis"])
    if op == "logSoftmax":
        return F.log_softmax(xs[0], a["axis"])
    raise ValueError(f"unknown op {op}")


def main():
    torch.set_num_threads(1)
    results = []
    for case in json.load(sys.stdin):
        xs = [torch.tensor(i["data"], dtype=torch.float64).reshape(i["shape"]).requires_grad_() for i in case["inputs"]]
        y = run(case["op"], case.get("attrs", {}), xs)
        # the cotangent is shaped like the output our builder infers: a different torch shape is reported, not used
        same = list(y.shape) == case["u"]["shape"]
        if same:
            y.backward(torch.tensor(case["u"]["data"], dtype=torch.float64).reshape(case["u"]["shape"]))
        results.append(
            {
                "y": y.detach().reshape(-1).tolist(),
                "shape": list(y.shape),
                "grads": [x.grad.reshape(-1).tolist() for x in xs] if same else [],
            }
        )
    print(json.dumps(results))


main()
