from sandbox.splose.cli import main

main()
