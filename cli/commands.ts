/** Commands with their own modules beyond the core three (build-graph, train, eval). */
import type { CommandModule } from "yargs";
import predict from "./predict.ts";
import serve from "./serve.ts";
import dashboard from "./dashboard.ts";

export const commandModules = [predict, serve, dashboard] as CommandModule<object, any>[];
