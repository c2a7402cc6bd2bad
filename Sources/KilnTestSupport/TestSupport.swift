import KilnIR
