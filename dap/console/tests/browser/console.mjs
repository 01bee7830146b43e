// Drives the DAP console in Chromium with playwright-core, in two phases that
// cairn/tests/dap_console.rs runs around its own steps (uploads and collection with the CLI):
//
//   node console.mjs create CONSOLE_URL OUT_DIR   sign up, make a collector key pair in the
//       browser (WebCrypto X25519), create a histogram metric with the shared helper, copy the
//       client snippet, download task.json; writes OUT_DIR/created.json.
//   node console.mjs check CONSOLE_URL OUT_DIR    read the task page's counts and its chart of
//       the stored result; a second account
//       tries the task by URL and API; a CSRF attempt; a wrong password; writes
//       OUT_DIR/checked.json.
//
// Screenshots go to OUT_DIR. Chromium is CHROMIUM (default /usr/bin/chromium). The assertions
// are the Rust test's: this script only records what the browser saw.
import { chromium } from "playwright-core";
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [phase, base, out] = process.argv.slice(2);
if (!phase || !base || !out) {
  console.error("usage: node console.mjs create|check CONSOLE_URL OUT_DIR");
  process.exit(2);
}
const PASSWORD = "correct horse battery staple";
const origin = new URL(base).origin;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const shot = (page, name) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });

async function signUp(context, email) {
  const page = await context.newPage();
  await page.goto(`${base}/signup`);
  await page.fill("#email", email);
  await page.fill("#password", PASSWORD);
  await Promise.all([page.waitForURL(/\/accounts\/[^/]+$/), page.click("#submit")]);
  return page;
}

try {
  if (phase === "create") {
    const context = await browser.newContext({ acceptDownloads: true });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
    const page = await signUp(context, "alice@example.com");
    const accountUrl = page.url();
    await shot(page, "01-account");

    // A collector key pair made in the browser: the private key is the file it saves.
    await page.click("#new-credential");
    await page.waitForSelector("#generate-in-browser:enabled");
    await shot(page, "02-credential");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click("#generate-in-browser"),
    ]);
    await download.saveAs(join(out, "collector-key.json"));
    await page.waitForURL(accountUrl);

    // The wizard.
    await page.click("#new-metric");
    await page.fill("#name", "Pages per visit");
    await page.check("input[name=kind][value=histogram]");
    await page.check("input[name=bucket_style][value=named]");
    await page.fill("#buckets", "one\ntwo\nthree or more");
    await page.selectOption("#time_precision", "60");
    await page.check("input[name=batching][value=report_count]");
    await page.fill("#min_batch_size", "6");
    await page.fill("#epsilon", "");
    await page.selectOption("#helper", "shared");
    await shot(page, "03-wizard");
    await Promise.all([page.waitForSelector("#task-id"), page.click("#create-metric")]);
    await shot(page, "04-task-created");
    const taskId = (await page.textContent("#task-id")).trim();
    const collectorToken = (await page.textContent("#collector-token")).trim();

    // Copy the client snippet with its button; download task.json.
    await page.click("#upload-snippet + button.copy");
    const clipboard = await page.evaluate(() => navigator.clipboard.readText());
    const [taskJson] = await Promise.all([page.waitForEvent("download"), page.click("#task-json")]);
    await taskJson.saveAs(join(out, "task.json"));

    // An API token, for `cairn dap collect --console` to store the result for the chart.
    await page.goto(accountUrl);
    await page.fill("#token-name", "collector");
    await page.click("#create-token");
    const apiToken = (await page.textContent("#api-token")).trim();

    await context.storageState({ path: join(out, "alice.json") });
    writeFileSync(
      join(out, "created.json"),
      JSON.stringify({ account_url: accountUrl, task_id: taskId,
                       collector_token: collectorToken, api_token: apiToken, clipboard }, null, 2),
    );
  } else if (phase === "check") {
    const created = JSON.parse(readFileSync(join(out, "created.json"), "utf8"));
    const alice = await browser.newContext({ storageState: join(out, "alice.json") });
    const page = await alice.newPage();
    const taskUrl = `${created.account_url}/tasks/${created.task_id}`;
    await page.goto(taskUrl);
    await shot(page, "05-task-counts");
    const count = async (id) => Number((await page.textContent(`#${id}`)).trim());
    const counts = {
      accepted: await count("accepted"),
      aggregated: await count("aggregated"),
      collections: await count("collections"),
      ready: (await page.textContent("#readiness")).includes("Ready to collect"),
    };
    // The chart of the result the collector stored: one bar per batch, its figures in the
    // bar's title and in the table.
    const chart = {
      bars: await page.locator("#results-chart g.bar").count(),
      bar_title: (await page.textContent("#results-chart g.bar title")) || "",
      result: ((await page.textContent("#results .result")) || "").trim(),
    };
    await page.locator("#results-chart").screenshot({ path: join(out, "05b-results-chart.png") });

    // CSRF: Alice's own cookie, a form without the token and one with a wrong token.
    const deleteUrl = `${taskUrl}/delete`;
    const csrf = {
      missing: (await page.request.post(deleteUrl, { form: {}, maxRedirects: 0 })).status(),
      wrong: (await page.request.post(deleteUrl, { form: { csrf: "forged" }, maxRedirects: 0 })).status(),
    };
    csrf.still_there = (await page.goto(taskUrl)).status();

    // A second account: by URL, through its own account's path, and by API.
    const bobContext = await browser.newContext();
    const bob = await signUp(bobContext, "bob@example.com");
    const bobAccount = bob.url();
    await bob.fill("#token-name", "bob's");
    await bob.click("#create-token");
    const bobToken = (await bob.textContent("#api-token")).trim();
    const other = {
      by_url: (await bob.goto(taskUrl)).status(),
      through_own_account: (await bob.goto(`${bobAccount}/tasks/${created.task_id}`)).status(),
      task_json: (await bob.goto(`${taskUrl}/task.json`)).status(),
    };
    await shot(bob, "06-second-account");
    await bob.goto(bobAccount);
    const bobCsrf = await bob.getAttribute("input[name=csrf]", "value");
    other.delete_form = (await bob.request.post(deleteUrl, {
      form: { csrf: bobCsrf }, maxRedirects: 0 })).status();
    const bearer = { headers: { authorization: `Bearer ${bobToken}` } };
    other.api_get = (await bob.request.get(`${base}/api/tasks/${created.task_id}`, bearer)).status();
    other.api_delete = (await bob.request.delete(`${base}/api/tasks/${created.task_id}`, bearer)).status();
    other.api_list = await (await bob.request.get(`${base}/api/tasks`, bearer)).json();
    other.api_store_result = (await bob.request.post(`${base}/api/tasks/${created.task_id}/results`, {
      ...bearer,
      data: { interval: { start: 0, duration: 60 }, report_count: 6, aggregate_result: [0, 0, 6] },
    })).status();

    // A wrong password.
    const stranger = await (await browser.newContext()).newPage();
    await stranger.goto(`${base}/login`);
    await stranger.fill("#email", "alice@example.com");
    await stranger.fill("#password", "not the password");
    const [login] = await Promise.all([
      stranger.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"),
      stranger.click("#submit"),
    ]);
    await shot(stranger, "07-wrong-password");
    const wrongPassword = {
      status: login.status(),
      message: ((await stranger.textContent(".error")) || "").trim(),
    };

    writeFileSync(
      join(out, "checked.json"),
      JSON.stringify({ counts, chart, csrf, other, wrong_password: wrongPassword }, null, 2),
    );
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
} finally {
  await browser.close();
}
