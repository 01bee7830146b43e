// Uploads measurements to a DAP-09 leader with @divviup/dap (divviup-ts), unmodified.
// Usage: node upload.mjs '<json>' where the JSON holds
//   { "id": task ID (base64url), "leader": URL, "helper": URL, "timePrecisionSeconds": n,
//     "vdaf": { "type": "count" | "sum" | "sumVec" | "histogram", ... },
//     "measurements": [...] }
// Prints the number of reports sent; any failure exits non-zero with the error.
import { Task } from "@divviup/dap";

const args = JSON.parse(process.argv[2]);
const task = new Task({
  ...args.vdaf,
  id: args.id,
  leader: args.leader,
  helper: args.helper,
  timePrecisionSeconds: args.timePrecisionSeconds,
});
let sent = 0;
for (const m of args.measurements) {
  await task.sendMeasurement(m);
  sent += 1;
}
console.log(JSON.stringify({ sent }));
