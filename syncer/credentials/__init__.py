"""Credentials from the backends (`fetch`) and the gate before they are published (`publish`),
with the registry login check (`verify`, over the bounded transport `verifyhttp`)."""
