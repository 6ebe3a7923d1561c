/**
 * The command a user types to run this CLI again, for the commands it suggests ("evaluate with: ..."). Started
 * through npm (`npm start`, `npx onnx-mnist`, which set npm_command), the bin is on PATH only inside npm, so the
 * user's shell needs `npx onnx-mnist`; started directly, the bin is on PATH (a global install).
 */
export const CLI = process.env.npm_command ? "npx onnx-mnist" : "onnx-mnist";
