// The version every package and image of Tally carries (package.json's; a unit test keeps them equal).
export const tallyVersion = "0.1.0";
