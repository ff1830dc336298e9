"""Pure scalar physics functions: maths only, no decorators, no allocation."""
