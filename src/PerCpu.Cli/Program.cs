using PerCpu.Cli;

// The percpu tool: `percpu demo`, `percpu trace --out trace.json`, `percpu bench`. See CliApp for the commands.
return await CliApp.RunAsync(args, CliConsole.ForProcess());
