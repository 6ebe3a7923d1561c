"""MNIST classifiers as people export them from PyTorch, for the interop tests (test/interop.test.ts).

    python3 torch_models.py MNIST_DIR OUT_DIR          trains and exports every model, writes OUT_DIR/models.json
    python3 torch_models.py eval MNIST_DIR NAME FILE   accuracy of MyCNN/LeNet-5 with FILE.safetensors loaded strictly

Each model is trained briefly (one pass over a few thousand images: accuracies far above chance, not good
ones) under its own pixel convention, exported with torch.onnx.export the way its kind of user would, and its
PyTorch test accuracy on all 10,000 test images recorded for the tests to compare with `onnx-mnist eval`.
safetensors is read and written with json + numpy (Debian has no safetensors module): the format is simple.
"""
import gzip, json, os, struct, sys

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
MEAN, STD = 0.1307, 0.3081


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist(d, split):
    prefix = "train" if split == "train" else "t10k"
    find = lambda n: next(p for p in (os.path.join(d, n), os.path.join(d, n + ".gz")) if os.path.exists(p))
    x = idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class MyCNN(nn.Module):
    """The tutorial's CNN, as the README defines it (src/nn/models/mycnn.json)."""

    def __init__(self):
        super().__init__()
        block = lambda i, o, p: [nn.Conv2d(i, o, 3, padding=p), nn.BatchNorm2d(o), nn.LeakyReLU(0.2), nn.MaxPool2d(2)]
        self.conv = nn.Sequential(*block(1, 3, 2), *block(3, 16, 1), *block(16, 32, 1))
        self.lin = nn.Linear(288, 10)

    def forward(self, x):
        return self.lin(self.conv(x).flatten(1))


class LeNet5(nn.Module):
    """src/nn/models/lenet5.json."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2).flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):  # x: [N, 784]
        return self.net(x)


class Head(nn.Module):
    """A body with a Softmax or LogSoftmax head, fed a layout other than [N,1,28,28]."""

    def __init__(self, body, head, layout):
        super().__init__()
        self.body, self.head, self.layout = body, head, layout
        self.eval()  # export restores the mode it finds, and the accuracy is taken after it

    def forward(self, x):
        if self.layout == "nhw":  # [N,28,28]
            x = x.unsqueeze(1)
        elif self.layout == "nhwc":  # [N,28,28,1]
            x = x.permute(0, 3, 1, 2)
        x = self.body(x)
        return self.head(x) if self.head is not None else x


def convention(x, name):
    """x: pixels in [0,1]."""
    return {"unit": x, "byte": x * 255.0, "mnist": (x - MEAN) / STD}[name]


def train(model, x, y, conv, flat=False, steps_images=4000, lr=3e-3, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for s in range(0, steps_images, 50):
        xb = convention(x[s : s + 50], conv)
        xb = xb.reshape(len(xb), 784) if flat else xb
        loss = nn.functional.cross_entropy(model(xb), y[s : s + 50])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@torch.no_grad()
def accuracy(model, x, y, conv, flat=False):
    xb = convention(x, conv)
    xb = xb.reshape(len(xb), 784) if flat else xb
    return int((model(xb).argmax(1) == y).sum())


def export(model, sample, path, **kw):
    torch.onnx.export(model, sample, path, opset_version=13, **kw)


def save_safetensors(state, path):
    header, blobs, at = {}, [], 0
    for k in sorted(state):
        a = state[k].detach().cpu().numpy()
        dt = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(data[8 + n + b : 8 + n + e], dtype=dt).copy().reshape(v["shape"]))
    return out


def main(mnist_dir, out):
    xtr, ytr = mnist(mnist_dir, "train")
    xte, yte = mnist(mnist_dir, "test")
    # Training uses images 10,000.. so that the CLI's calibration sample (the first 500) is not the training set.
    xtr, ytr = xtr[10000:], ytr[10000:]
    os.makedirs(out, exist_ok=True)
    models = {}

    def record(name, model, conv, flat=False, **meta):
        models[name] = {"file": f"{name}.onnx", "convention": conv, "correct": accuracy(model, xte, yte, conv, flat), "count": len(yte), **meta}

    torch.manual_seed(1)
    m = train(MyCNN(), xtr, ytr, "unit")
    export(m, torch.zeros(1, 1, 28, 28), f"{out}/tutorial.onnx")  # the defaults: input.1, a numeric output, batch 1
    record("tutorial", m, "unit", batch=1, kind="logits")

    dyn = {"input": {0: "batch"}, "output": {0: "batch"}}
    export(m, torch.zeros(1, 1, 28, 28), f"{out}/dynamic.onnx", input_names=["input"], output_names=["output"], dynamic_axes=dyn)
    record("dynamic", m, "unit", batch="dynamic", kind="logits")

    torch.manual_seed(2)
    s = Head(train(MyCNN(), xtr, ytr, "unit", seed=2), nn.Softmax(dim=1), "nhw")
    export(s, torch.zeros(1, 28, 28), f"{out}/softmax.onnx", input_names=["x"], output_names=["probs"], dynamic_axes={"x": {0: "n"}, "probs": {0: "n"}})
    models["softmax"] = {"file": "softmax.onnx", "convention": "unit", "correct": accuracy(s.body, xte, yte, "unit"), "count": len(yte), "batch": "dynamic", "kind": "probabilities"}

    torch.manual_seed(3)
    ls = Head(train(MyCNN(), xtr, ytr, "mnist", seed=3), nn.LogSoftmax(dim=1), "nchw")
    export(ls, torch.zeros(1, 1, 28, 28), f"{out}/logsoftmax.onnx", input_names=["Input3"], output_names=["Plus214_Output_0"])
    record("logsoftmax", ls, "mnist", batch=1, kind="log-probabilities")

    torch.manual_seed(4)
    mlp = train(MLP(), xtr, ytr, "unit", flat=True, seed=4)
    export(mlp, torch.zeros(1, 784), f"{out}/mlp.onnx", input_names=["input_0"], output_names=["logits"], dynamic_axes={"input_0": {0: "N"}, "logits": {0: "N"}})
    record("mlp", mlp, "unit", flat=True, batch="dynamic", kind="logits")

    torch.manual_seed(5)
    b = train(MyCNN(), xtr, ytr, "byte", seed=5)
    export(b, torch.zeros(1, 1, 28, 28), f"{out}/byte.onnx", dynamic_axes={"input.1": {0: "N"}})
    record("byte", b, "byte", batch="dynamic", kind="logits")

    torch.manual_seed(6)
    n = train(MyCNN(), xtr, ytr, "mnist", seed=6)
    export(n, torch.zeros(1, 1, 28, 28), f"{out}/mnist.onnx", input_names=["x"], dynamic_axes={"x": {0: "N"}})
    record("mnist", n, "mnist", batch="dynamic", kind="logits")

    fixed = Head(n, None, "nhwc")
    export(fixed, torch.zeros(10, 28, 28, 1), f"{out}/fixed10.onnx", input_names=["images"], output_names=["scores"])
    record("fixed10", n, "mnist", batch=10, kind="logits")

    # State dicts for the round trips: MyCNN (with BatchNorm) and LeNet-5 trained here, saved as safetensors.
    save_safetensors(m.state_dict(), f"{out}/mycnn.safetensors")
    models["mycnn.safetensors"] = {"file": "mycnn.safetensors", "convention": "unit", "correct": accuracy(m, xte, yte, "unit"), "count": len(yte)}
    torch.manual_seed(7)
    le = train(LeNet5(), xtr, ytr, "unit", seed=7)
    save_safetensors(le.state_dict(), f"{out}/lenet5.safetensors")
    models["lenet5.safetensors"] = {"file": "lenet5.safetensors", "convention": "unit", "correct": accuracy(le, xte, yte, "unit"), "count": len(yte)}

    # Not classifiers of 28x28 images: two inputs; 64 features instead of 10 scores; an integer input.
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = mlp

        def forward(self, a, b):
            return self.m(a) + self.m(b)

    export(Two().eval(), (torch.zeros(1, 784), torch.zeros(1, 784)), f"{out}/two-inputs.onnx", input_names=["a", "b"])
    export(mlp.net[0], torch.zeros(1, 784), f"{out}/features.onnx", input_names=["x"], output_names=["features"])

    # Weights in an external data file, which is then lost.
    import onnx

    ext = onnx.load(f"{out}/dynamic.onnx")
    onnx.save_model(ext, f"{out}/external.onnx", save_as_external_data=True, all_tensors_to_one_file=True, location="external.onnx.data", size_threshold=0)
    os.remove(f"{out}/external.onnx.data")

    with open(f"{out}/models.json", "w") as f:
        json.dump(models, f, indent=1)


def evaluate(mnist_dir, name, path):
    """Loads FILE strictly into a fresh MyCNN or LeNet5 and prints its test accuracy as JSON."""
    model = {"mycnn": MyCNN, "lenet5": LeNet5}[name]()
    state = load_safetensors(path)
    model.load_state_dict(state, strict=True)
    model.eval()
    xte, yte = mnist(mnist_dir, "test")
    tracked = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    print(json.dumps({"correct": accuracy(model, xte, yte, "unit"), "count": len(yte), "num_batches_tracked": tracked}))


if __name__ == "__main__":
    if sys.argv[1] == "eval":
        evaluate(*sys.argv[2:5])
    else:
        main(*sys.argv[1:3])
