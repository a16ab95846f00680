"""Local sandbox clouds on 127.0.0.1 (``cloudtmpl sandbox start|stop|status``).

``aws`` serves moto behind a small wire-compatibility layer so unpatched libcloud
drivers work against it; ``manager`` runs it as a reusable background process.
"""
