// Sign in with the page's own code (site/srp.js + site/auth.js) from Node, for the tests:
// node sign_in.js ENDPOINT POOL_ID CLIENT_ID USERNAME PASSWORD -> prints {"ok": true, user} or {"ok": false, type, message}.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const store = {};
globalThis.localStorage = {
  getItem: (k) => (k in store ? store[k] : null),
  setItem: (k, v) => { store[k] = String(v); },
  removeItem: (k) => { delete store[k]; },
};
const site = path.resolve(__dirname, "..", "..", "site");
for (const [file, name] of [["srp.js", "ImageEtlSrp"], ["auth.js", "ImageEtlAuth"]]) {
  vm.runInThisContext(`${fs.readFileSync(path.join(site, file), "utf8")}\nglobalThis.${name} = ${name};`);
}

const [endpoint, userPoolId, clientId, username, password] = process.argv.slice(2);
(async () => {
  const auth = new ImageEtlAuth.Auth({ endpoint, userPoolId, clientId, region: "us-east-1" });
  try {
    const result = await auth.signIn(username, password);
    if (!result.done) { console.log(JSON.stringify({ ok: false, type: result.challenge })); return; }
    await auth.refresh();
    console.log(JSON.stringify({ ok: true, user: auth.user, accessToken: auth.session.accessToken }));
  } catch (error) {
    console.log(JSON.stringify({ ok: false, type: error.type || error.name, message: error.message }));
  }
})();
