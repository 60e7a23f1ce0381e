// image-etl upload page: sign-in, presigned uploads with real progress, live status, a gallery.
// No build step and nothing from a CDN: plain ES2020 that reads config.json at load, so the
// same files work behind the local stack and behind CloudFront. Sign-in is auth.js (Cognito, SRP).
"use strict";

const DEFAULTS = {
  maxUploadBytes: 50 * 1024 * 1024,
  acceptedTypes: ["image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp",
                  "image/heic", "image/heif", "image/avif"],
};
// Browsers leave File.type empty for some formats (HEIC on most desktops): fall back to the name.
const TYPE_BY_EXTENSION = {
  jpg: "image/jpeg", jpeg: "image/jpeg", jpe: "image/jpeg", png: "image/png", webp: "image/webp",
  gif: "image/gif", tif: "image/tiff", tiff: "image/tiff", bmp: "image/bmp", heic: "image/heic",
  heif: "image/heif", avif: "image/avif",
};
const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const PARALLEL_UPLOADS = 3;
const POLL_MS = 1000;
const PROCESSING_TIMEOUT_MS = 180000;

const $ = (id) => document.getElementById(id);
let config = null;
let auth = null;
let pendingChallenge = null; // a sign-in waiting for a new password or an MFA code
const queue = [];
let active = 0;
const waiting = new Map(); // image_id -> row, while its record is not there yet
let galleryNext = null;
const knownLabels = new Set();

function mib(bytes) { return `${(bytes / 1048576).toFixed(bytes < 1048576 ? 2 : 1)} MiB`; }

function showBanner(text) { const b = $("banner"); b.textContent = text; b.hidden = false; }

// Every API call carries the access token; a 401 refreshes the session once and retries, and a
// session that cannot be refreshed raises SignInRequired (the page then asks for sign-in).
async function api(path, options = {}, retried = false) {
  const token = await auth.accessToken();
  const headers = { ...(options.headers || {}), Authorization: token };
  const response = await fetch(`${config.apiUrl}${path}`, { ...options, headers });
  if (response.status === 401) {
    if (retried) { auth.expire(); throw new ImageEtlAuth.SignInRequired("the API refused the session"); }
    await auth.refresh();
    return api(path, options, true);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const reason = body && body.detail ? body.detail : `HTTP ${response.status}`;
    const error = new Error(reason);
    error.status = response.status;
    throw error;
  }
  return body;
}

function fileType(file) {
  if (file.type) return file.type.toLowerCase();
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return TYPE_BY_EXTENSION[ext] || "";
}

// Checks made before anything is sent; the API and the resizer check again.
function refusal(file, type) {
  if (file.size === 0) return "the file is empty";
  if (!config.acceptedTypes.includes(type)) return `${type || "this file type"} is not an accepted image type`;
  if (file.size > config.maxUploadBytes) return `${mib(file.size)} is over the ${mib(config.maxUploadBytes)} limit`;
  return null;
}

function addRow(file) {
  const row = document.createElement("li");
  row.className = "upload";
  row.innerHTML = `<img class="thumb" alt=""><div class="name"></div>
    <div class="meta"><progress max="100" value="0" aria-label="upload progress"></progress>
    <span class="status" role="status"></span></div>`;
  row.querySelector(".name").textContent = `${file.name} · ${mib(file.size)}`;
  row.querySelector("progress").setAttribute("aria-label", `upload progress of ${file.name}`);
  $("uploads").prepend(row);
  return row;
}

function setStatus(row, state, text) {
  const status = row.querySelector(".status");
  status.className = `status status-${state}`;
  status.textContent = text;
  row.dataset.state = state;
  summarize();
}

// "3 done, 1 failed, 2 uploading": the list at a glance, and a way to clear what is finished.
const SUMMARY_ORDER = ["done", "failed", "refused", "processing", "uploading", "queued"];
function summarize() {
  const counts = {};
  for (const row of $("uploads").children) counts[row.dataset.state] = (counts[row.dataset.state] || 0) + 1;
  const parts = SUMMARY_ORDER.filter((state) => counts[state]).map((state) => `${counts[state]} ${state}`);
  $("upload-summary").textContent = parts.join(", ");
  $("upload-summary-row").hidden = parts.length === 0;
  $("clear-uploads").disabled = !(counts.done || counts.failed || counts.refused);
}

function clearFinished() {
  for (const row of [...$("uploads").children]) {
    if (["done", "failed", "refused"].includes(row.dataset.state)) row.remove();
  }
  summarize();
}

function addFiles(files) {
  const label = $("label").value.trim();
  if (label && !LABEL_PATTERN.test(label)) {
    $("label").focus();
    showBanner("The label may use letters, digits, '-' and '_' (up to 64), starting with a letter or digit.");
    return;
  }
  $("banner").hidden = true;
  for (const file of files) {
    const row = addRow(file);
    const type = fileType(file);
    const reason = refusal(file, type);
    if (reason) {
      row.querySelector("progress").hidden = true;
      setStatus(row, "refused", `refused: ${reason}`);
      continue;
    }
    setStatus(row, "queued", "queued");
    queue.push({ file, type, label, row });
  }
  pump();
}

function pump() {
  while (auth && auth.signedIn && active < PARALLEL_UPLOADS && queue.length) {
    const job = queue.shift();
    active += 1;
    upload(job).finally(() => { active -= 1; pump(); });
  }
}

function postWithProgress(url, form, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
      ? resolve()
      : reject(new Error(`storage refused the upload (HTTP ${xhr.status})`)));
    xhr.onerror = () => reject(new Error("network error while uploading"));
    xhr.send(form);
  });
}

async function upload(job) {
  const { file, type, label, row } = job;
  const progress = row.querySelector("progress");
  try {
    setStatus(row, "uploading", "uploading");
    const body = { filename: file.name, contentType: type, size: file.size };
    if (label) body.label = label;
    const grant = await api("/uploads", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const form = new FormData();
    for (const [name, value] of Object.entries(grant.upload.fields)) form.append(name, value);
    form.append("file", file);
    await postWithProgress(grant.upload.url, form, progress);
    progress.value = 100;
    setStatus(row, "processing", "processing");
    row.dataset.imageId = grant.image_id;
    row.dataset.since = String(Date.now());
    waiting.set(grant.image_id, row);
    schedulePoll();
  } catch (error) {
    if (error instanceof ImageEtlAuth.SignInRequired) {
      queue.unshift(job); // nothing was sent yet: it goes once someone signs in again
      setStatus(row, "queued", "waiting for sign-in");
      return;
    }
    setStatus(row, "failed", `failed: ${error.message}`);
  }
}

let pollTimer = null;
function schedulePoll() { if (!pollTimer) pollTimer = setTimeout(poll, POLL_MS); }

// One request for every image still processing: missing records are listed, not 404s.
async function poll() {
  pollTimer = null;
  const ids = [...waiting.keys()].slice(0, 100);
  if (!ids.length) return;
  try {
    const page = await api(`/images?ids=${ids.join(",")}`);
    let finished = false;
    for (const record of page.items) {
      const row = waiting.get(record.image_id);
      if (!row || (record.status !== "processed" && record.status !== "failed")) continue;
      waiting.delete(record.image_id);
      finished = true;
      if (record.status === "processed") {
        const thumb = row.querySelector(".thumb");
        thumb.src = record.variants.thumb.url;
        thumb.alt = `thumbnail of ${record.filename}`;
        setStatus(row, "done", `done · ${record.width}×${record.height}`);
      } else {
        setStatus(row, "failed", `failed: ${record.error}`);
      }
    }
    for (const [id, row] of waiting) {
      if (Date.now() - Number(row.dataset.since) > PROCESSING_TIMEOUT_MS) {
        waiting.delete(id);
        setStatus(row, "processing", "still processing: it will show in the gallery when done");
      }
    }
    if (finished) loadGallery(false);
  } catch (error) {
    if (error instanceof ImageEtlAuth.SignInRequired) return; // resumes after sign-in
    showBanner(`Could not check processing status: ${error.message}`);
  }
  if (waiting.size) schedulePoll();
}

function card(record) {
  const item = document.createElement("li");
  item.className = "card";
  item.dataset.label = record.label || "";
  item.dataset.status = record.status;
  item.dataset.imageId = record.image_id;
  // The whole card is a button: it opens the image's detail view.
  const open = document.createElement("button");
  open.type = "button";
  open.className = "card-open";
  open.setAttribute("aria-label", `details of ${record.filename}`);
  if (record.status === "processed" && record.variants.small) {
    const img = document.createElement("img");
    img.src = record.variants.small.url;
    img.alt = `${record.label || "unlabelled"} image ${record.filename}`;
    img.loading = "lazy";
    open.append(img);
  } else {
    const placeholder = document.createElement("div");
    placeholder.className = "placeholder";
    placeholder.textContent = `failed: ${record.error || "unknown reason"}`;
    open.append(placeholder);
  }
  const caption = document.createElement("div");
  caption.className = "caption";
  const name = document.createElement("span");
  name.className = "filename";
  name.textContent = record.filename;
  name.title = record.filename;
  const labelText = document.createElement("span");
  labelText.className = "label";
  labelText.textContent = record.label || "unlabelled";
  const size = document.createElement("span");
  size.className = "muted";
  size.textContent = record.status === "processed" ? `${record.width}×${record.height}` : "failed";
  caption.append(name, labelText, size);
  open.append(caption);
  open.addEventListener("click", () => showDetail(record.image_id));
  item.append(open);
  return item;
}

// The detail view: the larger variant and the record, fetched fresh (links are short-lived).
async function showDetail(imageId) {
  const dialog = $("detail");
  try {
    const record = await api(`/images/${imageId}`);
    const variant = record.variants.large || record.variants.medium || record.variants.small;
    const img = $("detail-image");
    img.hidden = !variant;
    if (variant) { img.src = variant.url; img.alt = `${record.filename}, ${record.width}×${record.height}`; }
    $("detail-title").textContent = record.filename;
    const facts = [
      ["status", record.status === "failed" ? `failed: ${record.error}` : record.status],
      ["label", record.label || "unlabelled"],
      ["size", record.width ? `${record.width}×${record.height} · ${record.format || ""}` : null],
      ["file", record.size != null ? mib(record.size) : null],
      ["uploaded", record.uploaded_at],
      ["processed", record.processed_at],
      ["quality flags", record.quality_flags ? (record.quality_flags.join(", ") || "none") : null],
      ["duplicate group", record.dup_group ? `${record.dup_group} (${record.dup_group_size || 1} images)` : null],
      ["split", record.split || null],
      ["image id", record.image_id],
    ];
    const list = $("detail-facts");
    list.replaceChildren();
    for (const [term, value] of facts) {
      if (value == null) continue;
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
    if (!dialog.open) dialog.showModal();
  } catch (error) {
    if (error instanceof ImageEtlAuth.SignInRequired) return;
    showBanner(`Could not open the image: ${error.message}`);
  }
}

async function loadGallery(append) {
  const label = $("filter").value.trim();
  const params = new URLSearchParams({ limit: "24" });
  if (label) params.set("label", label);
  if (append && galleryNext) params.set("next", galleryNext);
  try {
    const page = await api(`/images?${params}`);
    if ($("filter").value.trim() !== label) return; // the filter changed while this was loading
    const gallery = $("gallery");
    if (!append) gallery.replaceChildren();
    for (const record of page.items) {
      gallery.append(card(record));
      if (record.label && !knownLabels.has(record.label)) {
        knownLabels.add(record.label);
        const option = document.createElement("option");
        option.value = record.label;
        $("known-labels").append(option);
      }
    }
    galleryNext = page.next;
    $("more").hidden = !galleryNext;
    const empty = $("gallery-empty");
    empty.textContent = label ? `No images labelled “${label}”.` : "No images yet: upload some above.";
    empty.hidden = gallery.children.length > 0;
  } catch (error) {
    if (error instanceof ImageEtlAuth.SignInRequired) return;
    showBanner(`Could not load recent images: ${error.message}`);
  }
}

function showStep(step) {
  for (const field of document.querySelectorAll("#sign-in-form [data-step]")) field.hidden = field.dataset.step !== step;
  $("sign-in-submit").textContent = step === "password" ? "Sign in" : "Continue";
  const first = { password: "username", "new-password": "new-password", mfa: "mfa-code" }[step];
  $(first).focus();
}

function signInError(text) { const e = $("sign-in-error"); e.textContent = text; e.hidden = !text; }

// What the page shows follows the session: the sign-in form, or the upload section and gallery.
function render(reason) {
  const signedIn = auth.signedIn;
  $("sign-in").hidden = signedIn;
  $("account").hidden = !signedIn;
  $("upload-section").hidden = !signedIn;
  $("gallery-section").hidden = !signedIn;
  if (!signedIn) {
    $("mfa-section").hidden = true;
    $("mfa-done").hidden = true;
    pendingChallenge = null;
    $("password").value = "";
    signInError("");
    $("sign-in-note").textContent = reason === "expired"
      ? `Your session has ended: sign in again to go on.${queue.length ? ` ${queue.length} file(s) are waiting to upload.` : ""}`
      : "This dataset is private: sign in with the account your team gave you.";
    showStep("password");
    return;
  }
  const user = auth.user;
  $("account-name").textContent = user.username;
  const mayUpload = user.groups.includes("uploaders");
  $("upload-form").hidden = !mayUpload;
  $("upload-denied").hidden = mayUpload;
  loadGallery(false);
  pump();
  if (waiting.size) schedulePoll();
}

async function startMfaSetup() {
  $("mfa-error").hidden = true;
  try {
    $("mfa-secret").textContent = await auth.startTotp();
    $("mfa-section").hidden = false;
    $("mfa-done").hidden = true;
    $("mfa-setup-code").focus();
  } catch (error) {
    showBanner(`Could not start two-factor set-up: ${error.message}`);
  }
}

async function confirmMfaSetup(event) {
  event.preventDefault();
  try {
    await auth.confirmTotp($("mfa-setup-code").value.trim());
    $("mfa-section").hidden = true;
    $("mfa-done").hidden = false;
    $("mfa-setup-code").value = "";
  } catch (error) {
    $("mfa-error").textContent = error.type === "CodeMismatchException"
      ? "That code does not match: check the app's clock and the key, and try the next code." : error.message;
    $("mfa-error").hidden = false;
  }
}

function signedOut() {
  // An explicit sign-out leaves nothing of the dataset on the page.
  queue.length = 0;
  waiting.clear();
  $("uploads").replaceChildren();
  summarize();
  if ($("detail").open) $("detail").close();
  $("gallery").replaceChildren();
  $("known-labels").replaceChildren();
  knownLabels.clear();
  galleryNext = null;
}

async function submitSignIn(event) {
  event.preventDefault();
  signInError("");
  $("sign-in-submit").disabled = true;
  try {
    let result;
    if (!pendingChallenge) {
      const username = $("username").value.trim();
      const password = $("password").value;
      if (!username || !password) { signInError("Enter your user name and password."); return; }
      result = await auth.signIn(username, password);
    } else if (pendingChallenge.challenge === "NEW_PASSWORD_REQUIRED") {
      const chosen = $("new-password").value;
      if (chosen !== $("new-password-again").value) { signInError("The two new passwords differ."); return; }
      result = await auth.completeNewPassword(pendingChallenge, chosen);
    } else {
      result = await auth.answerMfa(pendingChallenge, $("mfa-code").value.trim());
    }
    if (result.done) { pendingChallenge = null; return; }
    pendingChallenge = result;
    showStep(result.challenge === "NEW_PASSWORD_REQUIRED" ? "new-password" : "mfa");
  } catch (error) {
    signInError(error instanceof ImageEtlAuth.CognitoError ? error.message : `sign-in failed: ${error.message}`);
    // A challenge's session lasts minutes: once it has ended, start over from the password.
    if (pendingChallenge && error.type === "NotAuthorizedException") { pendingChallenge = null; showStep("password"); }
  } finally {
    $("sign-in-submit").disabled = false;
  }
}

function wire() {
  const zone = $("dropzone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { addFiles([...input.files]); input.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => { event.preventDefault(); addFiles([...event.dataTransfer.files]); });
  let filterTimer = null;
  $("filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => loadGallery(false), 250);
  });
  $("more").addEventListener("click", () => loadGallery(true));
  $("upload-form").addEventListener("submit", (event) => event.preventDefault());
  $("sign-in-form").addEventListener("submit", submitSignIn);
  $("sign-out").addEventListener("click", () => auth.signOut());
  $("mfa-setup").addEventListener("click", startMfaSetup);
  $("clear-uploads").addEventListener("click", clearFinished);
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("click", (event) => { if (event.target === $("detail")) $("detail").close(); });
  $("mfa-form").addEventListener("submit", confirmMfaSetup);
  $("mfa-cancel").addEventListener("click", () => { $("mfa-section").hidden = true; });
  auth.onChange((reason) => { if (reason === "signed-out") signedOut(); render(reason); });
}

async function start() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    config = { ...DEFAULTS, ...(await response.json()) };
  } catch (error) {
    showBanner("This page could not read config.json, so it does not know where the upload API is.");
    return;
  }
  config.apiUrl = config.apiUrl.replace(/\/$/, "");
  $("max-size").textContent = mib(config.maxUploadBytes);
  if (!config.cognito || !window.crypto || !crypto.subtle) {
    showBanner("This page cannot sign in here: config.json names no user pool, or the page is not served over HTTPS.");
    return;
  }
  auth = new ImageEtlAuth.Auth(config.cognito);
  if (config.signInHint) { $("sign-in-hint").textContent = config.signInHint; $("sign-in-hint").hidden = false; }
  wire();
  render("start");
  document.body.dataset.ready = "true";
}

start();
