"""Shipped weights, installed as ``emovid.models`` (see ``emovid.assets``)."""
