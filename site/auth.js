// Sign-in for the upload page: Cognito's public API (InitiateAuth, RespondToAuthChallenge,
// RevokeToken) called straight from the page, against Cognito in AWS or the local stack's pool;
// config.json says where. Tokens are kept in localStorage (per app client) so a reload or a new
// tab stays signed in until the refresh token ends (30 days by default) or the user signs out.
"use strict";

const ImageEtlAuth = (() => {
  // Raised when nobody is signed in any more: the page asks for sign-in and keeps its queue.
  class SignInRequired extends Error {}

  // A Cognito error, with its type (NotAuthorizedException, ...) and Cognito's own message.
  class CognitoError extends Error {
    constructor(type, message) { super(message || type); this.type = type; }
  }

  const REFRESH_MARGIN_S = 60;

  function claimsOf(token) {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  }

  class Auth {
    constructor(cognito) {
      this.cognito = cognito;
      this.storageKey = `image-etl.session.${cognito.clientId}`;
      this.session = this.load();
      this.refreshing = null;
      this.listeners = [];
    }

    load() {
      try { return JSON.parse(localStorage.getItem(this.storageKey)) || null; } catch (_) { return null; }
    }

    store(session) {
      this.session = session;
      if (session) localStorage.setItem(this.storageKey, JSON.stringify(session));
      else localStorage.removeItem(this.storageKey);
    }

    onChange(listener) { this.listeners.push(listener); }
    notify(reason) { for (const listener of this.listeners) listener(reason); }

    get signedIn() { return Boolean(this.session && this.session.refreshToken); }

    // The signed-in user's name and groups, from the access token (display only: the API decides).
    get user() {
      if (!this.session) return null;
      const claims = claimsOf(this.session.accessToken);
      const groups = claims["cognito:groups"] || [];
      return { username: claims.username || claims["cognito:username"], groups: Array.isArray(groups) ? groups : [groups] };
    }

    async call(action, body) {
      const response = await fetch(this.cognito.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `AWSCognitoIdentityProviderService.${action}`,
        },
        body: JSON.stringify(body),
      });
      let data = {};
      try { data = await response.json(); } catch (_) { data = {}; }
      if (!response.ok) {
        const type = String(data.__type || `HTTP ${response.status}`).split("#").pop();
        throw new CognitoError(type, data.message || data.Message);
      }
      return data;
    }

    // Sign in; returns {done: true}, or {challenge, session, username} for a new password or an MFA code.
    async signIn(username, password) {
      const srp = new ImageEtlSrp.Session();
      const started = await this.call("InitiateAuth", {
        AuthFlow: "USER_SRP_AUTH",
        ClientId: this.cognito.clientId,
        AuthParameters: { USERNAME: username, SRP_A: srp.srpA },
      });
      if (started.ChallengeName !== "PASSWORD_VERIFIER") throw new CognitoError("UnexpectedChallenge", started.ChallengeName);
      const p = started.ChallengeParameters;
      const proof = await srp.answer({
        poolId: this.cognito.userPoolId, userId: p.USER_ID_FOR_SRP, password,
        salt: p.SALT, srpB: p.SRP_B, secretBlock: p.SECRET_BLOCK,
      });
      const body = {
        ChallengeName: "PASSWORD_VERIFIER",
        ClientId: this.cognito.clientId,
        ChallengeResponses: {
          USERNAME: p.USER_ID_FOR_SRP,
          PASSWORD_CLAIM_SECRET_BLOCK: p.SECRET_BLOCK,
          PASSWORD_CLAIM_SIGNATURE: proof.signature,
          TIMESTAMP: proof.timestamp,
        },
      };
      if (started.Session) body.Session = started.Session;
      return this.finish(await this.call("RespondToAuthChallenge", body), p.USERNAME || username);
    }

    async completeNewPassword(pending, newPassword) {
      return this.respond(pending, { NEW_PASSWORD: newPassword });
    }

    async answerMfa(pending, code) {
      return this.respond(pending, { SOFTWARE_TOKEN_MFA_CODE: code });
    }

    async respond(pending, answers) {
      const result = await this.call("RespondToAuthChallenge", {
        ChallengeName: pending.challenge,
        ClientId: this.cognito.clientId,
        Session: pending.session,
        ChallengeResponses: { USERNAME: pending.username, ...answers },
      });
      return this.finish(result, pending.username);
    }

    finish(result, username) {
      if (result.AuthenticationResult) {
        const r = result.AuthenticationResult;
        this.store({ accessToken: r.AccessToken, idToken: r.IdToken, refreshToken: r.RefreshToken });
        this.notify("signed-in");
        return { done: true };
      }
      if (["NEW_PASSWORD_REQUIRED", "SOFTWARE_TOKEN_MFA"].includes(result.ChallengeName)) {
        return { challenge: result.ChallengeName, session: result.Session, username };
      }
      throw new CognitoError("UnsupportedChallenge", `sign-in needs ${result.ChallengeName}, which this page cannot do`);
    }

    // TOTP set-up for the signed-in user: a secret for their app, then a code proving they added it.
    async startTotp() {
      const result = await this.call("AssociateSoftwareToken", { AccessToken: await this.accessToken() });
      return result.SecretCode;
    }

    async confirmTotp(code) {
      const accessToken = await this.accessToken();
      await this.call("VerifySoftwareToken", { AccessToken: accessToken, UserCode: code, FriendlyDeviceName: "image-etl" });
      await this.call("SetUserMFAPreference", {
        AccessToken: accessToken,
        SoftwareTokenMfaSettings: { Enabled: true, PreferredMfa: true },
      });
    }

    // A valid access token: the stored one, or a fresh one from the refresh token near its expiry.
    async accessToken() {
      if (!this.signedIn) throw new SignInRequired("not signed in");
      const exp = Number(claimsOf(this.session.accessToken).exp || 0);
      if (exp - Date.now() / 1000 > REFRESH_MARGIN_S) return this.session.accessToken;
      await this.refresh();
      return this.session.accessToken;
    }

    // Trade the refresh token for new tokens (one call at a time); an ended session signs out.
    async refresh() {
      if (!this.signedIn) throw new SignInRequired("not signed in");
      if (!this.refreshing) {
        const refreshToken = this.session.refreshToken;
        this.refreshing = this.call("InitiateAuth", {
          AuthFlow: "REFRESH_TOKEN_AUTH",
          ClientId: this.cognito.clientId,
          AuthParameters: { REFRESH_TOKEN: refreshToken },
        }).then((result) => {
          const r = result.AuthenticationResult;
          this.store({ accessToken: r.AccessToken, idToken: r.IdToken, refreshToken: r.RefreshToken || refreshToken });
        }, (error) => {
          if (error instanceof CognitoError && error.type === "NotAuthorizedException") this.expire();
          throw error instanceof CognitoError && error.type === "NotAuthorizedException"
            ? new SignInRequired("the session has ended") : error;
        }).finally(() => { this.refreshing = null; });
      }
      return this.refreshing;
    }

    // The session ended on its own (refresh token expired or revoked): forget it, keep the page.
    expire() {
      if (!this.session) return;
      this.store(null);
      this.notify("expired");
    }

    async signOut() {
      const session = this.session;
      this.store(null);
      if (session && session.refreshToken) {
        try {
          await this.call("RevokeToken", { Token: session.refreshToken, ClientId: this.cognito.clientId });
        } catch (_) { /* signed out here either way; the token just lives until it expires */ }
      }
      this.notify("signed-out");
    }
  }

  return { Auth, SignInRequired, CognitoError, claimsOf };
})();
