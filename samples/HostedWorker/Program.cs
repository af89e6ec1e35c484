// A Generic Host worker on PerCpu: the runtime comes from the "PerCpu" section of appsettings.json, starts with the
// host, is injected into the worker, and drains what was accepted when the host stops (Ctrl+C).
using HostedWorker;

HostApplicationBuilder builder = Host.CreateApplicationBuilder(args);
builder.Services.AddPerCpu(builder.Configuration.GetSection("PerCpu"));
builder.Services.AddHostedService<Worker>();
await builder.Build().RunAsync();
