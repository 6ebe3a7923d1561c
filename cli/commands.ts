/** Commands with their own modules beyond the core three (build-graph, train, eval). */
import type { CommandModule } from "yargs";
import predict from "./predict.ts";
import serve from "./serve.ts";
import dashboard from "./dashboard.ts";
import exportCmd from "./export.ts";

export const commandModules = [predict, serve, dashboard, exportCmd] as CommandModule<object, any>[];
