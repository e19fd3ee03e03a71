"""``inbox-api demo``: the whole product on one machine, with emulated Google and Microsoft.

An entry point (wiring only, like ``app.server``, ``app.worker`` and ``app.cli``)::

    inbox-api demo [--port 8000] [--data-dir DIR] [--new-mail-every 5]

What it does, in order (``app.demo.main``):

1. a throwaway test CA, and the Gmail and Microsoft emulators on loopback over https with it
   (``app.demo.mailboxes``), seeded with a few hundred realistic messages each
   (``emulators.corpus``: threads, non-ASCII names, HTML mail, attachments), the demo OAuth
   clients registered with this server's callback URLs;
2. the real server (``app.server.create_app``) on SQLite in a fresh data directory, with its
   embedded sync worker, trusting that CA (``google_ca_file``, ``microsoft_ca_file``);
3. an owner, and one mailbox of each provider connected through the real OAuth flows, driven
   the way a browser drives them (``app.demo.browser``): connect mutation, consent page
   (the emulators approve at once), callback on this server;
4. once both mailboxes are synced, the owner token, printed once with the GraphiQL URL and a
   first query and subscription; then a new message lands in the Gmail mailbox every few
   seconds, so a subscription visibly receives mail.

Nothing listens beyond 127.0.0.1 and nothing is fetched from outside. SIGINT or SIGTERM stops
the mail, the server (its worker finishes), the emulators, and deletes the temporary data
directory. The demo never reads ``INBOX_API_*`` variables: a production database configured
in the environment is never touched.
"""
