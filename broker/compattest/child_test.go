package compattest_test

const childEnv = "METAQ_COMPATTEST_CHILD"

func runChild(spec string) int { return 0 }
