/**
 * `import ... from "onnx-mnist/node"`: everything in "onnx-mnist" plus what needs Node: MNIST from IDX files,
 * image files, models on disk, run directories, the training run behind `onnx-mnist train`, the demo and
 * dashboard servers.
 */
export * from "../index.ts";
export { loadMnist, defaultMnistDir, type LoadOptions } from "../data/node.ts";
export { decodeImage, ImageError, type DecodedImage } from "../image/decode.ts";
export { openModel, sessionPredictor } from "./model-file.ts";
export { RunDir } from "./run-dir.ts";
export { trainRun, type TrainOptions, type TrainHooks, type TrainOutcome } from "./train-run.ts";
export { writeFileAtomic, UserError } from "./files.ts";
export { serveDemo, type DemoOptions, type DemoServer } from "../server/demo.ts";
export { startDashboard, type DashboardOptions, type Dashboard } from "../dashboard/server.ts";
export { writeReport } from "../dashboard/report.ts";
