"""Approximate 8-bit multipliers: truth tables and bit-exact emulation of int8 layers."""
