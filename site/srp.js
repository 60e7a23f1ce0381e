// Cognito's SRP sign-in (USER_SRP_AUTH), client side: the password never leaves the browser.
// SRP-6a over RFC 5054's 3072-bit group with SHA-256, in Cognito's flavour (pool name and user id
// in x, an HKDF key, an HMAC over the secret block and a timestamp), on BigInt and WebCrypto with
// no library. Its server-side twin is image_etl/local/srp.py; both are checked against pycognito.
"use strict";

const ImageEtlSrp = (() => {
  const N_HEX =
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";
  const N = BigInt(`0x${N_HEX}`);
  const G = 2n;
  const encoder = new TextEncoder();
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function mod(value) { const r = value % N; return r < 0n ? r + N : r; }

  function modPow(base, exponent) {
    let result = 1n;
    let b = mod(base);
    let e = exponent;
    while (e > 0n) {
      if (e & 1n) result = (result * b) % N;
      e >>= 1n;
      b = (b * b) % N;
    }
    return result;
  }

  // Even length, and a leading 00 when the top bit is set: the bytes Cognito hashes.
  function padHex(value) {
    let hex = value.toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    else if ("89abcdef".includes(hex[0])) hex = `00${hex}`;
    return hex;
  }

  function hexToBytes(hex) {
    const bytes = new Uint8Array(hex.length / 2);
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
    return bytes;
  }

  function bytesToHex(bytes) { return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(""); }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) { out.set(part, offset); offset += part.length; }
    return out;
  }

  async function sha256Hex(bytes) {
    return bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
  }

  async function hexHash(hex) { return sha256Hex(hexToBytes(hex)); }

  async function hmac(keyBytes, dataBytes) {
    const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", key, dataBytes));
  }

  function randomBigInt(bytes) {
    return BigInt(`0x${bytesToHex(crypto.getRandomValues(new Uint8Array(bytes)))}`);
  }

  // "Tue Dec 1 21:07:43 UTC 2026": Cognito's format (day of month not padded).
  function timestamp(date = new Date()) {
    const two = (n) => String(n).padStart(2, "0");
    return `${DAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]} ${date.getUTCDate()} ` +
      `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} UTC ${date.getUTCFullYear()}`;
  }

  function base64ToBytes(text) { return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)); }
  function bytesToBase64(bytes) { return btoa(String.fromCharCode(...bytes)); }

  // One sign-in attempt: start() gives SRP_A, answer() turns the server's challenge into the proof.
  class Session {
    constructor() {
      do {
        this.a = randomBigInt(128);
        this.A = modPow(G, this.a);
      } while (this.A === 0n);
    }

    get srpA() { return this.A.toString(16); }

    async answer({ poolId, userId, password, salt, srpB, secretBlock, now = new Date() }) {
      const B = BigInt(`0x${srpB}`);
      if (mod(B) === 0n) throw new Error("the server's SRP_B is invalid");
      const k = BigInt(`0x${await hexHash(padHex(N) + padHex(G))}`);
      const u = BigInt(`0x${await hexHash(padHex(this.A) + padHex(B))}`);
      if (u === 0n) throw new Error("the server's SRP_B gives u = 0");
      const poolName = poolId.split("_")[1];
      const inner = await sha256Hex(encoder.encode(`${poolName}${userId}:${password}`));
      const x = BigInt(`0x${await hexHash(padHex(BigInt(`0x${salt}`)) + inner)}`);
      const S = modPow(B - k * modPow(G, x), this.a + u * x);
      const prk = await hmac(hexToBytes(padHex(u)), hexToBytes(padHex(S)));
      const key = (await hmac(prk, concat(encoder.encode("Caldera Derived Key"), new Uint8Array([1])))).slice(0, 16);
      const stamp = timestamp(now);
      const message = concat(encoder.encode(poolName), encoder.encode(userId), base64ToBytes(secretBlock),
        encoder.encode(stamp));
      return { timestamp: stamp, signature: bytesToBase64(await hmac(key, message)) };
    }
  }

  return { Session, timestamp, padHex };
})();
