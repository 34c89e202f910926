"""Seeds a fresh `agentry serve` so checks see real items, not empty lists.

Creates an organization whose owner has verified the address (the link comes from the mail
catcher's Maildir), an API key, a second user who accepted an invitation as `member`, a run of
the built-in `echo` model that has ended (so that its streams end too), and a platform
administrator (`agentry admin create`, the only way to make one). Prints shell
assignments (`export NAME='value'`) for the caller to `source`.

Usage: seed.py BASE_URL MAILDIR AGENTRY_BINARY DATABASE_URL. Standard library only: it runs
before any tool is installed.
"""

import json
import mailbox
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE, MAILDIR, BINARY, DATABASE_URL = sys.argv[1:5]
PASSWORD = "correct horse battery staple"


def call(method, path, body=None, token=None, expect=(200, 201, 202, 204)):
    """One JSON request; fails loudly on any status outside `expect`."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    if status not in expect:
        sys.exit(f"seed: {method} {path} answered {status}: {text}")
    return json.loads(text) if text else None


def wait_ready():
    for _ in range(300):
        try:
            with urllib.request.urlopen(BASE + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("seed: the service was not ready after 60 s")


def mailed_token(recipient, link_path):
    """The `token` of the link to `link_path` in the newest mail to `recipient`."""
    marker = f"{link_path}?token="
    for _ in range(150):
        for message in reversed(list(mailbox.Maildir(MAILDIR))):
            if recipient not in (message["To"] or ""):
                continue
            for part in message.walk():
                payload = part.get_payload(decode=True)
                text = payload.decode(errors="replace") if payload else ""
                if marker in text:
                    token = text.split(marker, 1)[1].split()[0]
                    return urllib.parse.unquote(token.rstrip(">\"').,"))
        time.sleep(0.2)
    sys.exit(f"seed: no mail to {recipient} with a {link_path} link after 30 s")


def platform_admin(email):
    """Creates the administrator in the store and logs in once the service's read model has it."""
    subprocess.run(
        [BINARY, "admin", "create", "--email", email, "--password", PASSWORD],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": DATABASE_URL, "RUST_LOG": "warn"},
        check=True, stdout=subprocess.DEVNULL,
    )
    for _ in range(150):
        login = call("POST", "/v1/auth/login", {"email": email, "password": PASSWORD},
                     expect=(200, 401))
        if login:
            return login
        time.sleep(0.1)
    sys.exit(f"seed: the administrator {email} could not log in after 15 s")


def finished_run(token):
    """A completed run of the built-in `echo` model: its streams read it whole and end."""
    agent = call("POST", "/v1/agents", {"name": "Seeded echo", "model": "echo", "tools": [],
                                        "approval": "never", "max_steps": 2}, token)
    conversation = call("POST", "/v1/conversations", {"agent_id": agent["id"]}, token)
    run = call("POST", f"/v1/conversations/{conversation['id']}/runs",
               {"input": "a seeded run to stream"}, token)
    for _ in range(150):
        if call("GET", f"/v1/runs/{run['run_id']}", token=token)["status"] == "completed":
            return run["run_id"]
        time.sleep(0.2)
    sys.exit("seed: the seeded run did not complete within 30 s")


def main():
    wait_ready()
    owner_email, member_email = "owner@example.com", "member@example.com"
    owner = call("POST", "/v1/auth/register",
                 {"email": owner_email, "password": PASSWORD, "org_name": "Checks"})
    call("POST", "/v1/auth/verify-email", {"token": mailed_token(owner_email, "/verify-email")})
    key = call("POST", "/v1/api-keys", {"name": "checks"}, owner["access_token"])
    call("POST", "/v1/members", {"email": member_email, "role": "member"}, owner["access_token"])
    member = call("POST", "/v1/auth/register",
                  {"email": member_email, "password": PASSWORD, "org_name": "Member's own"})
    invitation = mailed_token(member_email, "/accept-invitation")
    call("POST", "/v1/invitations/accept", {"token": invitation}, member["access_token"])
    run_id = finished_run(owner["access_token"])
    admin = platform_admin("admin@example.com")
    values = {
        "CHECKS_ADMIN_TOKEN": admin["access_token"],
        "CHECKS_ORG_ID": owner["org_id"],
        "CHECKS_OWNER_EMAIL": owner_email,
        "CHECKS_PASSWORD": PASSWORD,
        "CHECKS_OWNER_TOKEN": owner["access_token"],
        "CHECKS_OWNER_REFRESH_TOKEN": owner["refresh_token"],
        "CHECKS_API_KEY": key["key"],
        "CHECKS_API_KEY_ID": key["id"],
        "CHECKS_MEMBER_ID": member["user_id"],
        "CHECKS_RUN_ID": run_id,
    }
    for name, value in values.items():
        print(f"export {name}={shlex.quote(str(value))}")


main()
