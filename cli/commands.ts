export const commandModules = [] as import("yargs").CommandModule<object, any>[];
