"""The version of vidcap, in a module of its own so any layer can read it without importing the
package root (which exposes the captioner)."""

__version__ = "0.1.0"
