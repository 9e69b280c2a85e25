"""Thin GraphQL resolvers: translate input, call a service, translate the result. Imports
``schema`` and ``services``."""
