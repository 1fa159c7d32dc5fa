"""``python -m cni`` runs the kemu-bridge plugin."""
from cni.plugin import main

main()
