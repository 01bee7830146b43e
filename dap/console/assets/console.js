// Cairn console: progressive enhancement only. Every page works without this script except
// making a collector key pair in the browser, which needs WebCrypto X25519.
"use strict";

(function () {
  function b64url(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The wizard: show the fields of the chosen kind, and the noise ε implies.
  const wizard = document.getElementById("wizard");
  if (wizard) {
    const update = function () {
      const checked = wizard.querySelector("input[name=kind]:checked");
      const kind = checked ? checked.value : "";
      for (const el of wizard.querySelectorAll(".kind-fields")) {
        el.hidden = !el.dataset.kind.split(" ").includes(kind);
      }
      const noise = document.getElementById("noise");
      const eps = parseFloat(document.getElementById("epsilon").value);
      if (!noise) return;
      let sensitivity = null;
      let unit = "reports";
      if (kind === "histogram") sensitivity = 2;
      if (kind === "count_vector") {
        const len = parseInt(document.getElementById("vector_length").value, 10);
        const max = parseInt(document.getElementById("vector_max").value, 10);
        if (len > 0 && max > 0) sensitivity = len * max;
        unit = (wizard.querySelector("input[name=unit]").value || "units");
      }
      if (sensitivity && eps > 0) {
        // Discrete Laplace of scale t = Δ/ε from each of the two aggregators.
        const p = Math.exp(-eps / sensitivity);
        const sd = Math.sqrt(2 * (2 * p / ((1 - p) * (1 - p))));
        noise.textContent = "With ε = " + eps + ", each entry of a result is off by about ±" +
          sd.toFixed(1) + " " + unit + " (one standard deviation of the noise both aggregators add).";
      } else {
        noise.textContent = "Without ε the aggregators add no noise; the minimum batch size is the only protection.";
      }
    };
    wizard.addEventListener("input", update);
    wizard.addEventListener("change", update);
    update();
  }

  // Snippets get a button that copies them.
  for (const pre of document.querySelectorAll("pre.snippet")) {
    if (!navigator.clipboard) break;
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy";
    copy.textContent = "Copy";
    copy.addEventListener("click", async function () {
      await navigator.clipboard.writeText(pre.textContent);
      copy.textContent = "Copied";
    });
    pre.after(copy);
  }

  // Collector credential made in the browser: X25519 with WebCrypto. The private key goes
  // into a file the browser saves; only the public HpkeConfig is sent to the server.
  const keygen = document.getElementById("browser-keygen");
  if (keygen) {
    const status = document.getElementById("webcrypto-status");
    const button = document.getElementById("generate-in-browser");
    const generate = function () {
      return crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
    };
    (async function () {
      try {
        if (!window.crypto || !crypto.subtle) throw new Error("no WebCrypto");
        await generate();
        status.textContent = "Your browser makes the key pair; the private key never leaves it except as the file you save.";
        button.disabled = false;
      } catch (e) {
        status.textContent = "This browser cannot make X25519 keys; use the server-side option below.";
      }
    })();
    keygen.addEventListener("submit", async function (ev) {
      if (document.getElementById("hpke_config").value) return;
      ev.preventDefault();
      const pair = await generate();
      const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
      const id = parseInt(keygen.dataset.configId, 10);
      // DAP HpkeConfig: id u8, kem u16 (X25519-HKDF-SHA256), kdf u16 (HKDF-SHA256),
      // aead u16 (AES-128-GCM), public key opaque<1..2^16-1>.
      const config = new Uint8Array(9 + pub.length);
      config.set([id, 0x00, 0x20, 0x00, 0x01, 0x00, 0x01, pub.length >> 8, pub.length & 0xff]);
      config.set(pub, 9);
      const encoded = b64url(config);
      const file = JSON.stringify({ config: encoded, private_key: jwk.d }, null, 2) + "\n";
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([file], { type: "application/json" }));
      a.download = "collector-key.json";
      document.body.appendChild(a);
      a.click();
      document.getElementById("hpke_config").value = encoded;
      setTimeout(function () { keygen.submit(); }, 500);
    });
  }
})();
