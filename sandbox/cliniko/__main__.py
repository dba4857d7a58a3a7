from sandbox.cliniko.cli import main

main()
