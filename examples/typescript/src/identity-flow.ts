// The identity flow as a TypeScript client would write it: types generated from Agentry's
// served OpenAPI document (`npm run generate` writes src/agentry.d.ts), every call through
// openapi-fetch, so paths, bodies, answers and error codes are all checked by the compiler.
//
//   AGENTRY_BASE_URL=http://127.0.0.1:8080 npm start
//
// It registers an organization, logs in, creates an API key, reads /v1/me with that key, lists
// the members, and tries to register the same address again, a refusal it recognises by its
// typed `code`. Any other answer ends the process with a non-zero status.
import createClient from "openapi-fetch";
import type { components, paths } from "./agentry.js";

type Problem = components["schemas"]["Problem"];
// Bodies named the way openapi-typescript documents it: by path, method, status and media type.
type Me = paths["/me"]["get"]["responses"][200]["content"]["application/json"];
type MemberList = paths["/members"]["get"]["responses"][200]["content"]["application/json"];

const baseUrl = `${process.env.AGENTRY_BASE_URL ?? "http://127.0.0.1:8080"}/v1`;
const agentry = createClient<paths>({ baseUrl });

/** Stops the example: an answer it did not expect is a failure, never something to skip. */
function fail(step: string, answer: { error?: unknown; response: Response }): never {
  console.error(`${step}: unexpected ${answer.response.status}`, answer.error ?? "");
  process.exit(1);
}

/** The `Authorization` header for an access token or an API key. */
function bearer(credential: string): { Authorization: string } {
  return { Authorization: `Bearer ${credential}` };
}

const email = `typescript-example-${Date.now()}@example.com`;
const password = "correct horse battery staple";

const registration = await agentry.POST("/auth/register", {
  body: { email, password, org_name: "TypeScript example" },
});
if (!registration.data) fail("register", registration);
console.log(`registered ${email}: organization ${registration.data.org_id}`);

const login = await agentry.POST("/auth/login", { body: { email, password } });
if (!login.data) fail("login", login);
const accessToken = login.data.access_token;
console.log(`logged in; the access token lasts ${login.data.expires_in} s`);

const created = await agentry.POST("/api-keys", {
  body: { name: "typescript example" },
  headers: bearer(accessToken),
});
if (!created.data) fail("create API key", created);
console.log(`API key ${created.data.prefix} created (shown once)`);

const me = await agentry.GET("/me", { headers: bearer(created.data.key) });
if (!me.data) fail("me", me);
const caller: Me = me.data;
if (caller.org_id !== registration.data.org_id) {
  console.error("me: the key answers for another organization", caller);
  process.exit(1);
}
console.log(`the key acts as ${caller.role} of ${caller.org_id}`);

const members = await agentry.GET("/members", { headers: bearer(accessToken) });
if (!members.data) fail("list members", members);
const list: MemberList = members.data;
for (const member of list.members) {
  console.log(`member ${member.email}: ${member.role}`);
}

// A refusal, told apart by its code. `Problem["code"]` is the enum of every code the service
// emits, so a misspelt or retired code here is a compile error, not a branch that never runs.
const again = await agentry.POST("/auth/register", {
  body: { email, password, org_name: "TypeScript example, again" },
});
if (!again.error) fail("register the same address again", again);
const refusal: Problem = again.error;
switch (refusal.code) {
  case "email_taken":
    console.log(`registering ${email} again is refused: ${refusal.detail}`);
    break;
  default:
    fail("register the same address again", again);
}
console.log("identity flow: ok");
