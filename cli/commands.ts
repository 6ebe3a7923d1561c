/** Commands with their own modules beyond the core three (build-graph, train, eval). */
import type { CommandModule } from "yargs";
import predict from "./predict.ts";

export const commandModules = [predict] as CommandModule<object, any>[];
