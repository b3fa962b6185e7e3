from mizu_cli.main import main

main()
