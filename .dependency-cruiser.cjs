// Tally's layers, checked by `make layers` (part of `make check`). Bottom to top:
//   services/common → services/storage → the services (applier, projector, verify, producer, topics,
//   testing) → the command layer (services/cli/*, each service's command.ts / commands.ts) → tools/.
// A module may import its own folder and any layer below it, never one above; a service reaches
// another service only where a rule below allows it. Type-only imports count like any other
// (tsPreCompilationDeps): a type is still a dependency of the code that names it.
// test/unit/layers.unit.spec.ts plants forbidden imports in a copy of the tree to show each rule bites.

/** The command layer: the CLI and every file that registers commander commands. */
const commandLayer = "^services/(cli/|[^/]+/commands?[.]ts$)";
/** Folders under services/ that are not a service: the layers below them and the CLI. */
const notServices = "common|storage|cli";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "No import circles: a module and what it imports form a tree, not a loop.",
      from: {},
      to: { circular: true },
    },
    {
      name: "services-not-command-layer",
      severity: "error",
      comment:
        "Services never import the command layer (services/cli, command.ts, commands.ts): a command is a " +
        "shell over a service, never the other way round.",
      from: { path: "^services/", pathNot: commandLayer },
      to: { path: commandLayer },
    },
    {
      name: "services-not-tools",
      severity: "error",
      comment: "Nothing under services/ imports tools/: the tools ship with the repository, not with Tally.",
      from: { path: "^services/" },
      to: { path: "^tools/" },
    },
    {
      name: "common-imports-nothing-above",
      severity: "error",
      comment: "services/common is the bottom layer: it imports nothing of the repository but itself.",
      from: { path: "^services/common/" },
      to: { path: "^(services|tools)/", pathNot: "^services/common/" },
    },
    {
      name: "storage-imports-no-service",
      severity: "error",
      comment: "services/storage sits on common alone: no service, command or tool.",
      from: { path: "^services/storage/" },
      to: { path: "^(services|tools)/", pathNot: "^services/(common|storage)/" },
    },
    {
      name: "producer-stands-alone",
      severity: "error",
      comment: "The producer (a published package) imports nothing of the applier, the projector or the tools.",
      from: { path: "^services/producer/" },
      to: { path: "^(services/(applier|projector)/|tools/)" },
    },
    {
      name: "projector-not-applier",
      severity: "error",
      comment:
        "The projector imports nothing of the applier: what both read (applier_offsets, progress) is in storage.",
      from: { path: "^services/projector/" },
      to: { path: "^services/applier/" },
    },
    {
      name: "no-cross-service",
      severity: "error",
      comment:
        "A service (or its command file) imports no other service: shared code goes down to storage or " +
        "common. Only services/testing may use verify, the projector and the producer (it runs them).",
      from: { path: "^services/([^/]+)/", pathNot: `^services/(${notServices}|testing)/` },
      to: { path: "^services/", pathNot: `^services/($1|${notServices})/` },
    },
    {
      name: "testing-uses-verify-projector-producer",
      severity: "error",
      comment: "services/testing may use verify, the projector and the producer, and no other service.",
      from: { path: "^services/testing/" },
      to: { path: "^services/", pathNot: `^services/(testing|verify|projector|producer|${notServices})/` },
    },
  ],
  options: {
    includeOnly: "^(services|tools)/",
    exclude: { path: "(^|/)(dist|node_modules)/" },
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".mjs", ".cjs", ".json"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
